"""Per-recipient slots: where delivery puts each recipient's name, address and personal links.

Only our templates create a slot. Each render draws a secret random marker and the templates
spell every slot with it (`[[digest-<32 hex>:email]]`); the MIME template, the web copy and the
previews then find slots by that marker alone. Content (titles, links, summaries, the intro) is
fixed before the marker exists and never learns it, so no source can spell a slot: a
`[[digest:email]]` planted in a feed is text like any other, escaped on output.

Slots are plain ASCII that survives HTML escaping, MJML and quoted-printable unchanged, so the
issue is rendered once and each copy is made by substitution.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

NAME = "name"
# The name with a leading space, or nothing: "Hello[[...:greeting_name]]," reads
# "Hello Ada," or "Hello," for a subscriber without a name.
GREETING_NAME = "greeting_name"
EMAIL = "email"
UNSUBSCRIBE_URL = "unsubscribe_url"
PREFERENCES_URL = "preferences_url"
VIEW_ONLINE_URL = "view_online_url"

FIELDS = (NAME, GREETING_NAME, EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, VIEW_ONLINE_URL)
# Every copy must carry these: the links the law and RFC 8058 ask for, and who it went to.
REQUIRED = (EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, VIEW_ONLINE_URL)

# Issues frozen before markers were secret spelled every slot "[[digest:field]]"; their
# messages were built then, and only their web copy still reads them (migration 0004).
LEGACY_MARKER = "digest"
_MARKER = re.compile(r"digest-[0-9a-f]{32}")
_FIELD = "|".join(FIELDS)


class SlotError(ValueError):
    """A marker that no render of ours could have drawn."""


@dataclass(frozen=True, slots=True)
class Slots:
    """The slots of one render, spelled with that render's secret marker."""

    marker: str

    def __post_init__(self) -> None:
        if self.marker != LEGACY_MARKER and not _MARKER.fullmatch(self.marker):
            raise SlotError(f"not a slot marker: {self.marker!r}")

    @classmethod
    def new(cls) -> Slots:
        """A fresh marker: 128 random bits, drawn after the content it will sit among."""
        return cls(f"digest-{secrets.token_hex(16)}")

    def slot(self, field: str) -> str:
        if field not in FIELDS:
            raise SlotError(f"no such slot: {field!r}")
        return f"[[{self.marker}:{field}]]"

    # What the templates write: {{ ph.EMAIL }}, {{ ph.UNSUBSCRIBE_URL }} ...
    @property
    def NAME(self) -> str:
        return self.slot(NAME)

    @property
    def GREETING_NAME(self) -> str:
        return self.slot(GREETING_NAME)

    @property
    def EMAIL(self) -> str:
        return self.slot(EMAIL)

    @property
    def UNSUBSCRIBE_URL(self) -> str:
        return self.slot(UNSUBSCRIBE_URL)

    @property
    def PREFERENCES_URL(self) -> str:
        return self.slot(PREFERENCES_URL)

    @property
    def VIEW_ONLINE_URL(self) -> str:
        return self.slot(VIEW_ONLINE_URL)

    @property
    def pattern(self) -> re.Pattern[str]:
        """Matches this render's slots; group 1 is the field. (`re` caches the compiled form.)"""
        return re.compile(r"\[\[" + re.escape(self.marker) + r":(" + _FIELD + r")\]\]")

    def fill(self, body: str, values: Mapping[str, str], default: str | None = None) -> str:
        """`body` with each slot replaced by its field's value (or `default`, else kept)."""

        def value(match: re.Match[str]) -> str:
            found = values.get(match.group(1), default)
            return match.group(0) if found is None else found

        return self.pattern.sub(value, body)
