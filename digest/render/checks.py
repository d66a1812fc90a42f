"""What an editor should know before approving: things that make an issue look broken, read
badly or look like phishing, found in the view and in the HTML a reader gets.

Each finding is one sentence for a person; none stops an approval (the allow-list and the
required slots do that, in digest.render.issue). Titles in sentences are quoted, never markup:
every place that shows a warning escapes it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import lxml.html

from digest.render.view import IssueView

# Inboxes cut a subject near here: Gmail on a desktop shows about 70 characters, phones fewer.
SUBJECT_WARN_CHARS = 70
# Findings of one kind beyond this many are counted, not listed.
LISTED = 5


def review(view: IssueView, html: str) -> list[str]:
    return [
        *_subject(view),
        *_empty_groups(view),
        *_images_without_alt(html),
        *_links_off_their_source(view),
    ]


def _subject(view: IssueView) -> list[str]:
    length = len(view.subject)
    if length <= SUBJECT_WARN_CHARS:
        return []
    return [
        f"the subject is {length} characters long: inboxes cut it after about "
        f"{SUBJECT_WARN_CHARS}, so put what matters first"
    ]


def _empty_groups(view: IssueView) -> list[str]:
    return [
        f"the group {group.label!r} has no items: drop it or add one"
        for group in view.groups
        if not group.items
    ]


def _images_without_alt(html: str) -> list[str]:
    if "<img" not in html:
        return []
    missing = [
        img.get("src") or "(no src)"
        for img in lxml.html.document_fromstring(html).iter("img")
        if not (img.get("alt") or "").strip()
    ]
    if not missing:
        return []
    shown = ", ".join(_short(src) for src in missing[:LISTED])
    more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
    return [
        f"{len(missing)} image(s) have no alt text, so readers who block images or use a "
        f"screen reader get nothing: {shown}{more}"
    ]


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    return parts.hostname.lower().removeprefix("www.")


def _same_site(link: str, source: str) -> bool:
    """news.example.org and example.org are the same site; example.org.evil.test is not."""
    return link == source or link.endswith("." + source) or source.endswith("." + link)


def _links_off_their_source(view: IssueView) -> list[str]:
    found = []
    for group in view.groups:
        for item in group.items:
            link, source = _host(item.url), _host(item.source_url)
            if link and source and not _same_site(link, source):
                found.append(f"{item.title!r} links to {link}, not to {source}")
    if not found:
        return []
    more = f"; and {len(found) - LISTED} more" if len(found) > LISTED else ""
    return [
        f"{len(found)} item(s) link to another site than their source's; check they are "
        f"what the source meant: {'; '.join(found[:LISTED])}{more}"
    ]


def _short(url: str, limit: int = 80) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"
