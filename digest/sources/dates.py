"""Dates as pages and feeds write them, read into aware UTC; the naive UTC the store keeps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import dateparser

from digest.sources.text import one_line


def to_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def store_time(value: datetime | None) -> datetime | None:
    """The naive UTC form every timestamp column holds."""
    return None if value is None else to_utc(value).replace(tzinfo=None)


_HAS_DIGIT = re.compile(r"\d")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+)?(Z|[+-]\d{2}:?\d{2})?$")
# A date inside a longer line ("12 February 2024 | Interview"): tried when the whole fails.
_DATE_INSIDE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}(?:st|nd|rd|th|er)?\.?\s+[^\W\d_]{3,12}\.?,?\s+\d{4}"
    r"|[^\W\d_]{3,12}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
    r"|\d{1,2}[./-]\d{1,2}[./-]\d{4}"
    r"|\d{4}年\d{1,2}月\d{1,2}日"
)


def _primary_language(language: str | None) -> str | None:
    if not language:
        return None
    return language.replace("_", "-").split("-")[0].lower() or None


@lru_cache(maxsize=4096)
def parse_date(text: str | None, language: str | None = None) -> datetime | None:
    """A date as written on a page ("21 February 2024", "21 février 2024", "21/02/2024",
    ISO 8601) in aware UTC, or None. Needs a year: a guessed year would misdate old items.

    The source's language is tried first; numeric dates are read day first except for
    American English ("en-US"). A date without a time is midnight UTC.
    """
    if not text:
        return None
    text = one_line(text)[:80]
    if not _HAS_DIGIT.search(text):
        return None
    if _ISO_DATE.match(text):
        try:
            return to_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
    order = "MDY" if (language or "").lower().replace("_", "-") == "en-us" else "DMY"
    settings: Any = {
        "TIMEZONE": "UTC",
        "TO_TIMEZONE": "UTC",
        "RETURN_AS_TIMEZONE_AWARE": True,
        "DATE_ORDER": order,
        "PREFER_DAY_OF_MONTH": "first",
        "REQUIRE_PARTS": ["month", "year"],
    }
    primary = _primary_language(language)
    attempts: list[list[str] | None] = [[primary]] if primary else []
    attempts.append(None)
    candidates = [text] + [m.group(0) for m in _DATE_INSIDE.finditer(text) if m.group(0) != text]
    for candidate in candidates[:4]:
        for languages in attempts:
            try:
                parsed = dateparser.parse(candidate, languages=languages, settings=settings)
            except (ValueError, OverflowError, TypeError, LookupError):
                parsed = None
            if parsed is not None:
                return to_utc(parsed)
    return None
