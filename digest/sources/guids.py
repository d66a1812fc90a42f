"""An item's guid: what makes it the same item when its source is read again.

One rule for feeds and listing pages alike: the document's own id, else the item's canonical
URL, else a digest of its title and date. The digest spells the date in ISO 8601 (UTC); until
migration 0006 listing pages spelled it with a space ("2024-02-21 09:00:00+00:00"), and that
migration rewrote the guids stored that way, so a re-collect finds the same items.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from digest.sources.dates import to_utc
from digest.sources.text import one_line
from digest.urls import canonical_url

GUID_MAX = 1000
DIGEST_PREFIX = "sha1:"


def title_digest(title: str, published: datetime | None) -> str:
    """The guid of an item with neither an id nor a usable URL."""
    stamp = to_utc(published).isoformat() if published else ""
    return DIGEST_PREFIX + hashlib.sha1(f"{title}\n{stamp}".encode()).hexdigest()


def item_guid(own_id: str | None, url: str | None, title: str, published: datetime | None) -> str:
    """The document's id, else the canonical URL, else a digest of title and date."""
    if own_id and (own := one_line(own_id)):
        return own[:GUID_MAX]
    if url and (canonical := canonical_url(url)):
        return canonical
    return title_digest(title, published)
