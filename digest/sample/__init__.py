"""Sample data for the demo: a news-listing page modelled on a real one, and how to read it.

The page groups items under month headings, puts a category label before each title and uses
relative links (resolved against its <base href>); the seed's own news items fill it.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_LISTING: Path = Path(__file__).with_name("news.html")

SAMPLE_SELECTORS: dict[str, str] = {
    "item": "li.news-item",
    "title": "h3.news-title a",
    "date": "p.news-date",
    "summary": "p.news-teaser",
}
