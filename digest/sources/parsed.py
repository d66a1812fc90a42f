"""What parsing a feed or a listing page yields, before it is stored as an `Item`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class ParsedItem:
    """One news item as read from a document, already normalised.

    - `guid`: the document's own id for the item, else its canonical URL, else a hash.
    - `title`: one line of plain text; "" when the document gives none.
    - `url`: absolute http(s) URL of the item, or None.
    - `summary_html`: sanitised with nh3 (safe to embed); `summary_text`: the same as plain text.
    - `published_at`: an *aware* datetime in UTC (tzinfo=UTC), or None when the document has no
      (readable) date; the store keeps it as naive UTC.
    - `image_url`: absolute URL of a picture for the item, or None.
    """

    guid: str
    title: str
    url: str | None
    summary_html: str = ""
    summary_text: str = ""
    published_at: datetime | None = None
    image_url: str | None = None
    categories: tuple[str, ...] = ()  # the feed's categories (tags) of the item, plain text
