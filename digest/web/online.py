"""The web copy of an issue: its frozen HTML with the per-recipient slots made neutral.

The page is the same for everyone who has the link, so it must show nobody's name or address
and carry no working unsubscribe link; those point at a page explaining where to find one.
Slots are found by the issue's own marker, so text in an item that looks like one stays text.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from digest import placeholders
from digest.issues.freeze import issue_slots
from digest.models import Issue, IssueVariant
from digest.placeholders import Slots


def web_copy(html: str, slots: Slots, *, links_url: str, view_url: str) -> str:
    # "Hello [[name]]," -> "Hello,"; "Hola, [[name]]:" -> "Hola:" (the greeting's own punctuation).
    html = re.sub(r",?\s*" + re.escape(slots.NAME), "", html)
    # The paragraph that names the address ("You receive this email at ... because ...") only
    # makes sense in someone's inbox: the web copy drops it whole rather than leave a hole.
    email_paragraph = r"<p\b[^>]*>(?:(?!</p>).)*?" + re.escape(slots.EMAIL) + r".*?</p>"
    html = re.sub(email_paragraph, "", html, flags=re.DOTALL)
    links = {
        placeholders.UNSUBSCRIBE_URL: links_url,
        placeholders.PREFERENCES_URL: links_url,
        placeholders.VIEW_ONLINE_URL: view_url,
    }
    # GREETING_NAME ("Hello[[...]],") and whatever render learns to leave next: nobody's.
    return slots.fill(html, links, default="")


def issue_web_copy(
    issue: Issue, variant: IssueVariant | None = None, *, root: str, view_path: str
) -> str:
    """The web copy of a frozen issue, or of one of its variants (an edition, a topic set),
    as /v/TOKEN and the archive serve it: its personal links lead to /links (in the copy's
    language), its view-online link to `view_path` (under `root`)."""
    if variant is not None and variant.html is not None and variant.slot_marker:
        html, slots = variant.html, Slots(variant.slot_marker)
        links_url = f"{root}/links?{urlencode({'lang': variant.language})}"
    else:
        html, slots, links_url = issue.html or "", issue_slots(issue), f"{root}/links"
    return web_copy(html, slots, links_url=links_url, view_url=root + view_path)
