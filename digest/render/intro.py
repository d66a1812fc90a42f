"""An issue's intro: the editor writes Markdown, the reader gets HTML through the summaries'
allow-list.

Raw HTML in the Markdown is not passed through (it shows as the text it is), and every link
and image is rebuilt by digest.urls like a summary's, so the intro can carry nothing a summary
could not. The text part keeps the Markdown as written: it reads as plain text.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

from digest.render.sanitise import clean_summary


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "commonmark" with html off: `<script>` in the intro is text, not a tag.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def intro_html(markdown: str) -> str:
    if not markdown.strip():
        return ""
    return clean_summary(_parser().render(markdown))
