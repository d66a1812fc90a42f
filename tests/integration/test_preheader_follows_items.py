"""The preheader (and subject) the list's templates made at compose follow the draft's items:
an item added by hand or dropped makes them again with the new count, in the list's language
(its month said in French, Spanish or Arabic); a language edition's copy says them in its own
language with its own count. What the editor typed is kept as typed. On SQLite and PostgreSQL,
through the library's one path (the web page, the API and the CLI call it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.issues.items import add_item
from digest.issues.variants import variant_view
from digest.models import Issue, Item, Source
from digest.subscribers.lists import create_list, link_source

# Composed on 20 March 2026: the month heading is March's, in the list's language.
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
# language: (preheader template, what it says for n items)
PREHEADERS = {
    "en": ("{count} new items", "{} new items"),
    "fr": ("{count} nouveautés · {month}", "{} nouveautés · Mars 2026"),
    "es": ("{count} noticias de {month}", "{} noticias de Marzo 2026"),
    "ar": ("{count} أخبار · {month}", "{} أخبار · مارس 2026"),
}
SUBJECT = ("{list} · {month} · {count}", "Gazette · {} · {}")
MONTHS = {"en": "March 2026", "fr": "Mars 2026", "es": "Marzo 2026", "ar": "مارس 2026"}


@pytest.fixture(autouse=True)
def in_march() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


def draft(session: Session, language: str, preheader: str | None = None) -> Issue:
    """A list in `language` with the test's templates, and its first issue of three items."""
    items = 3
    lst = create_list(
        session,
        slug=f"gazette-{language}",
        name="Gazette",
        language=language,
        subject_template=SUBJECT[0],
        preheader_template=preheader or PREHEADERS[language][0],
    )
    source = Source(name="Town hall", url=f"https://town.example.org/{language}", kind="feed")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    for i in range(items):
        url = f"https://town.example.org/{language}/{i}"
        session.add(
            Item(
                source_id=source.id,
                guid=f"g{i}",
                url=url,
                canonical_url=url,
                title=f"Story {i}",
                summary_html=f"<p>Story {i}.</p>",
                summary_text=f"Story {i}.",
                published_at=NOW.replace(tzinfo=None) - timedelta(days=i + 1),
            )
        )
    session.flush()
    issue = compose_issue(session, lst.id)
    assert issue is not None and len(issue.issue_items) == items
    session.commit()
    return issue


def by_hand(session: Session, issue: Issue, n: int) -> int:
    added = add_item(
        session,
        issue.id,
        title=f"Added by hand {n}",
        url=f"https://volunteer.example.org/{n}",
        group="From the editor",
    )
    session.commit()
    return added.item_id


def reread(session: Session, issue: Issue) -> tuple[str, str]:
    session.expire_all()
    fresh = lifecycle.get_issue(session, issue.id)
    return fresh.preheader, fresh.subject


@pytest.mark.parametrize("language", sorted(PREHEADERS))
def test_a_made_preheader_follows_every_item_change(
    session: Session, db_url: str, language: str
) -> None:
    issue = draft(session, language)
    said, month = PREHEADERS[language][1], MONTHS[language]

    def expect(n: int) -> tuple[str, str]:
        return said.format(n), SUBJECT[1].format(month, n)

    assert reread(session, issue) == expect(3)
    added = by_hand(session, issue, 1)
    assert reread(session, issue) == expect(4)
    first = sorted(issue.issue_items, key=lambda ii: ii.position)[0].item_id
    lifecycle.drop_item(session, issue.id, first)
    session.commit()
    assert reread(session, issue) == expect(3)
    lifecycle.move_item(session, issue.id, added, 0)  # out of its group: the count holds
    session.commit()
    assert reread(session, issue) == expect(3)
    lifecycle.drop_item(session, issue.id, added)
    session.commit()
    assert reread(session, issue) == expect(2)

    # The editor saves the intro; the form sends the preheader and subject back unchanged:
    # they are still the made ones, and still follow.
    preheader, subject = reread(session, issue)
    lifecycle.edit_draft(session, issue.id, intro="Hello", subject=subject, preheader=preheader)
    session.commit()
    by_hand(session, issue, 2)
    assert reread(session, issue) == expect(3)


def test_what_the_editor_typed_is_kept(session: Session, db_url: str) -> None:
    issue = draft(session, "fr")
    lifecycle.edit_draft(
        session, issue.id, subject="Le port rouvre", preheader="Ce mois-ci : le port et la ville"
    )
    session.commit()
    added = by_hand(session, issue, 1)
    assert reread(session, issue) == ("Ce mois-ci : le port et la ville", "Le port rouvre")
    lifecycle.drop_item(session, issue.id, added)
    lifecycle.drop_item(session, issue.id, issue.issue_items[0].item_id)
    session.commit()
    assert reread(session, issue) == ("Ce mois-ci : le port et la ville", "Le port rouvre")
    # Cleared on purpose: an empty preheader stays empty.
    lifecycle.edit_draft(session, issue.id, preheader="")
    session.commit()
    by_hand(session, issue, 2)
    assert reread(session, issue)[0] == ""


def test_an_edition_says_the_made_preheader_in_its_language_with_its_count(
    session: Session, db_url: str
) -> None:
    """A French edition of a list whose own language is English gets the preheader made
    again in French for its own items; an editor's preheader is the same in every edition."""
    issue = draft(session, "en", "{count} items · {month}")
    lst = issue.mailing_list
    assert reread(session, issue)[0] == "3 items · March 2026"
    by_hand(session, issue, 1)
    assert reread(session, issue)[0] == "4 items · March 2026"
    members = sorted(issue.issue_items, key=lambda ii: ii.position)[:2]
    view = variant_view(issue, lst, members, "fr", get_settings())
    assert view.preheader == "2 items · Mars 2026"
    lifecycle.edit_draft(session, issue.id, preheader="The harbour, and more")
    session.commit()
    view = variant_view(issue, lst, members, "fr", get_settings())
    assert view.preheader == "The harbour, and more"
