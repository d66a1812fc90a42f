"""`digest demo`: the whole monthly job on embedded defaults, on the shipped sample news."""

from __future__ import annotations

import io
import time
from datetime import date
from pathlib import Path

from digest.cli.common import console, unit_of_work
from digest.cli.sending import send_inline
from digest.config import Settings, get_settings
from digest.db import session_factory
from digest.delivery.ledger import issue_progress
from digest.errors import DigestError
from digest.issues.compose import previous_issue
from digest.issues.lifecycle import get_issue
from digest.issues.preview import personalise_for_preview, render_preview
from digest.issues.schedule import record_fire
from digest.keys import keep_random_key, signing_keys
from digest.migrate import upgrade
from digest.models import SourceKind, utcnow
from digest.pipeline import approve_issue, start_sending
from digest.sample import SAMPLE_LISTING, SAMPLE_SELECTORS
from digest.scheduled import claim_scheduled, run_scheduled
from digest.sources.registry import add_source, find_source
from digest.subscribers.lists import create_list, find_list, link_source
from digest.subscribers.service import import_csv

LIST_SLUG = "sse-news"
FIRST_NAMES = (
    "Ada",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Émilie",
    "Farah",
    "Gustavo",
    "Hiroko",
    "Ifeoma",
    "Jonas",
    "Kateřina",
    "Luis",
    "Mei",
    "Nadia",
    "Oskar",
    "Priya",
)
LAST_NAMES = ("Okafor", "Silva", "Müller", "Nguyen", "Dubois", "Kowalski", "García", "Sato")


def sample_subscribers_csv(count: int) -> str:
    out = io.StringIO()
    out.write("email,name\n")
    for i in range(count):
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
        out.write(f"reader{i + 1:05d}@example.org,{first} {last}\n")
    return out.getvalue()


def _ensure_list(settings: Settings, session_count: int) -> tuple[int, int]:
    """The demo list, its sample source and subscribers; made once, found after."""
    with unit_of_work(settings) as session:
        lst = find_list(session, LIST_SLUG)
        if lst is None:
            # The sample news is from 2023-2024: the first issue looks back that far.
            lookback = (date.today() - date(2023, 1, 1)).days
            lst = create_list(
                session,
                slug=LIST_SLUG,
                name="News on Social and Solidarity Economy",
                description="The monthly digest of SSE news.",
                from_name="SSE News",
                from_email="news@example.org",
                lookback_days=lookback,
                subject_template="{list}: {count} stories",
                preheader_template="{count} stories from the social and solidarity economy",
                max_items=100,
            )
        url = SAMPLE_LISTING.resolve().as_uri()
        source = find_source(session, url) or add_source(
            session,
            url=url,
            kind=SourceKind.HTML,
            name="SSE news page",
            selectors=dict(SAMPLE_SELECTORS),
            language="en",
        )
        link_source(session, lst.id, source.id)
        import_csv(session, lst.id, io.StringIO(sample_subscribers_csv(session_count)))
        return lst.id, source.id


def run_demo(subscribers: int) -> None:
    started = time.perf_counter()
    settings = get_settings()
    if not settings.keys:
        # No set-up: a random key made once, kept beside the database (signing_keys finds it).
        keep_random_key(settings)
    signing_keys(settings)  # a published key is refused here, before anything is made
    upgrade(settings.database_url)
    list_id, source_id = _ensure_list(settings, subscribers)

    # The list's issue for now, as its schedule would make it: its sources brought up to
    # date, then composed up to now (what `digest run` does for each fire).
    now = utcnow()
    with unit_of_work(settings) as session:
        record_id = record_fire(session, list_id, now, now)
    with unit_of_work(settings) as session:
        ids = [record_id] if record_id is not None else []
        claims = claim_scheduled(session, now, settings.schedule_lease_seconds, ids)
    if not claims:
        raise DigestError("the demo list's issue for now is being made elsewhere")
    outcome = run_scheduled(session_factory(settings.database_url), claims[0], settings)
    collected = next((r for r in outcome.collected if r.source_id == source_id), None)
    if collected is not None and collected.error:
        console.print(f"collect: the sample source failed: {collected.error}", markup=False)
    elif collected is not None:
        console.print(f"collected: {collected.new} new items from the sample news page")
    if outcome.state == "failed":
        raise DigestError(outcome.error or "the issue could not be made")

    with unit_of_work(settings) as session:
        issue = get_issue(session, outcome.issue_id) if outcome.issue_id else None
        if issue is None:
            prev = previous_issue(session, list_id)
            when = prev.period_end.strftime("%Y-%m-%d %H:%M") if prev else "-"
            sent = issue_progress(session, prev.id).sent if prev else 0
            console.print(
                f"nothing new since issue #{prev.number if prev else '?'} ({when} UTC, "
                f"{sent} sent): no issue composed, nothing sent. Outbox: {settings.outbox_dir}/",
                markup=False,
            )
            return
        issue_id, items = issue.id, len(issue.issue_items)
        console.print(
            f"composed issue {issue_id} with {items} items: {issue.subject}", markup=False
        )

    with unit_of_work(settings) as session:
        approval = approve_issue(session, issue_id, settings)
    for warning in approval.warnings:
        console.print(f"warning: {warning}", markup=False)

    preview_dir = Path("preview")
    preview_dir.mkdir(exist_ok=True)
    with unit_of_work(settings) as session:
        rendered = render_preview(session, issue_id, settings)
    html_path = preview_dir / f"issue-{issue_id}.html"
    text_path = preview_dir / f"issue-{issue_id}.txt"
    html_path.write_text(personalise_for_preview(rendered.html, rendered.slots), encoding="utf-8")
    text_path.write_text(personalise_for_preview(rendered.text, rendered.slots), encoding="utf-8")

    with unit_of_work(settings) as session:
        handover = start_sending(session, issue_id)
    counts = send_inline(issue_id, settings)
    seconds = time.perf_counter() - started
    console.print(
        f"\ndemo done in {seconds:.1f} s: {items} items, {handover.planned} recipients, "
        f"{counts.sent} sent, {counts.failed} failed\n"
        f"preview: {html_path} and {text_path}\n"
        f"outbox:  {settings.outbox_dir}/ (a Maildir: one file per message in new/)",
        markup=False,
    )
