"""Plain view dataclasses that templates render; built from the store by `digest.issues`.

render never touches the ORM: everything a template shows is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from digest.placeholders import Slots


@dataclass(frozen=True, slots=True)
class ItemView:
    title: str
    url: str | None
    summary_html: str  # sanitised (nh3) at collection, and again on output
    summary_text: str
    published_at: datetime | None  # naive UTC
    image_url: str | None
    source_name: str
    source_url: str = ""  # where the item was collected from: its link's host is checked


@dataclass(frozen=True, slots=True)
class GroupView:
    label: str  # "February 2024", a source's name, or "" when not grouped
    items: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class IssueView:
    list_name: str
    list_description: str
    number: int
    subject: str
    preheader: str
    intro: str  # Markdown (digest.render.intro); the text part shows it as written
    language: str  # babel locale, e.g. "en", "fr"
    groups: tuple[GroupView, ...]
    from_name: str
    footer_address: str = ""  # the sender's postal address, when the list has one
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def item_count(self) -> int:
        return sum(len(g.items) for g in self.groups)


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """The issue rendered once: HTML and text with this render's per-recipient slots left in."""

    html: str
    text: str
    warnings: tuple[str, ...]
    slots: Slots  # the marker its slots are spelled with; only these are ever filled
