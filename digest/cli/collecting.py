"""`digest collect`: fetch due sources (or one) in-process, one transaction per source, none
open while fetching."""

from __future__ import annotations

from sqlalchemy import select

from digest.cli.common import console, err, unit_of_work
from digest.cli.sending import progress_bar
from digest.db import session_factory
from digest.errors import NotFound
from digest.models import Source
from digest.sources.collect import collect_sources


def collect_now(source_id: int | None) -> None:
    if source_id is not None:
        with unit_of_work() as session:
            if session.get(Source, source_id) is None:
                raise NotFound(f"no source {source_id}")
    with progress_bar() as bar:
        task = bar.add_task("collecting sources", total=None)
        results = collect_sources(
            session_factory(),
            None if source_id is None else [source_id],
            on_progress=lambda done, due: bar.update(task, completed=done, total=due),
        )
    if not results:
        console.print("no source is due yet; `digest collect --source ID` fetches one now")
        return
    with unit_of_work() as session:
        names = dict(session.execute(select(Source.id, Source.name)).all())
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
