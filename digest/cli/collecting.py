"""`digest collect`: fetch due sources (or one) in-process, one transaction per source, none
open while fetching."""

from __future__ import annotations

from digest.cli.common import console, err, unit_of_work
from digest.cli.sending import progress_bar
from digest.config import get_settings
from digest.db import session_factory
from digest.sources.collect import collect_sources
from digest.sources.registry import get_source, source_names


def collect_now(source_id: int | None) -> None:
    settings = get_settings()
    if source_id is not None:
        with unit_of_work(settings) as session:
            get_source(session, source_id)  # NotFound: one line, exit 2
    with progress_bar() as bar:
        task = bar.add_task("collecting sources", total=None)
        results = collect_sources(
            session_factory(settings.database_url),
            None if source_id is None else [source_id],
            settings=settings,
            on_progress=lambda done, due: bar.update(task, completed=done, total=due),
        )
    if not results:
        console.print("no source is due yet; `digest collect --source ID` fetches one now")
        return
    with unit_of_work(settings) as session:
        names = source_names(session)
    new = 0
    for r in results:
        label = names.get(r.source_id, str(r.source_id))
        if r.error:
            err.print(f"source {r.source_id} {label}: {r.error}", markup=False)
        else:
            state = "not modified" if r.not_modified else f"{r.new} new, {r.updated} updated"
            console.print(f"source {r.source_id} {label}: {state}", markup=False)
            new += r.new
    console.print(f"collected {len(results)} sources, {new} new items")
