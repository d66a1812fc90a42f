"""`digest sources`: try a source before adding it, add it, list the sources and their health."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from digest import overview
from digest.accounts import audit
from digest.cli.common import UsageProblem, cli_actor, console, unit_of_work
from digest.config import get_settings
from digest.db import session_factory
from digest.sources.collect import collect_sources
from digest.sources.fetch import normalise_target
from digest.sources.history import recent_fetches
from digest.sources.listing import Selectors
from digest.sources.parsed import ParsedItem
from digest.sources.reader import ReadResult, read_once
from digest.sources.registry import (
    add_read_source,
    get_source,
    set_enabled,
    set_source_language,
    update_source,
)
from digest.subscribers.lists import get_list, link_source

app = typer.Typer(
    help="Try a feed or listing page, add it as a source, list the sources' health.",
    no_args_is_help=True,
)


class Kind(StrEnum):
    auto = "auto"
    feed = "feed"
    html = "html"


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def item_json(item: ParsedItem) -> dict[str, Any]:
    return {
        "title": item.title or None,
        "url": item.url,
        "published_at": iso_utc(item.published_at),
        "summary": item.summary_text,
        "guid": item.guid,
    }


def _selectors(
    item: str | None,
    title: str | None,
    link: str | None,
    date: str | None,
    summary: str | None,
    next_: str | None,
    max_pages: int | None,
    page_param: str | None,
    page_step: int | None,
) -> Selectors | None:
    given = {
        "item": item, "title": title, "link": link, "date": date, "summary": summary,
        "next": next_, "max_pages": max_pages, "page_param": page_param, "page_step": page_step,
    }  # fmt: skip
    chosen = {k: v for k, v in given.items() if v is not None}
    if not chosen:
        return None
    if not item:
        parts = [k for k in ("title", "link", "date", "summary") if k in chosen]
        if parts:
            raise UsageProblem(
                f"--item is needed with --{parts[0]} (or give no selectors to infer them)"
            )
        # Paging options only: the item selectors are inferred, the paging is as given.
        paging = Selectors(
            item="",
            next=next_,
            max_pages=max_pages,
            page_param=page_param,
            page_step=page_step or 1,
        )
        paging.check()
        return paging
    return Selectors.from_dict(chosen)


# Options shared by `try` and `add`.
KIND = typer.Option(
    Kind.auto,
    "--kind",
    help="auto: a feed, else the feed a page announces, else the page as a listing.",
)
ITEM = typer.Option(None, "--item", help="CSS selector of each item block (listing pages).")
TITLE = typer.Option(None, "--title", help="CSS selector of the title inside an item.")
LINK = typer.Option(None, "--link", help="CSS selector of the link (default: the title's).")
DATE = typer.Option(None, "--date", help="CSS selector of the date inside an item.")
SUMMARY = typer.Option(None, "--summary", help="CSS selector of the summary inside an item.")
NEXT = typer.Option(None, "--next", help="CSS selector of the next-page link.")
MAX_PAGES = typer.Option(None, "--max-pages", min=1, max=50, help="Pages to read at most.")
PAGE_PARAM = typer.Option(None, "--page-param", help="Query parameter counting pages: page.")
PAGE_STEP = typer.Option(None, "--page-step", min=1, help="Its step, e.g. 20 for offsets.")
LANGUAGE = typer.Option(None, "--language", help="Language of the dates, e.g. fr (a hint).")
CANDIDATE = typer.Option(
    1,
    "--candidate",
    min=1,
    help="Which inferred selector set to use, as `sources try` numbers them (1: the best).",
)


def _selector_line(selectors: Selectors) -> str:
    parts = []
    for name, value in selectors.to_dict().items():
        option = name.replace("_", "-")
        parts.append(f"--{option} {json.dumps(value) if isinstance(value, str) else value}")
    return " ".join(parts)


def _describe(result: ReadResult) -> str:
    if result.kind == "feed":
        where = f" (announced by the page: {result.feed_url})" if result.feed_url else ""
        return f"feed{where}: {len(result.items)} items"
    assert result.selectors is not None
    how = "inferred" if result.selectors.inferred else "given"
    pages = f" on {result.pages} pages" if result.pages > 1 else ""
    return (
        f"listing page: {len(result.items)} items{pages}; selectors ({how}): "
        f"{_selector_line(result.selectors)}"
    )


@app.command("try")
def try_(
    target: str = typer.Argument(..., metavar="URL_OR_PATH", help="A feed, a page or a file."),
    kind: Kind = KIND,
    item: str | None = ITEM,
    title: str | None = TITLE,
    link: str | None = LINK,
    date: str | None = DATE,
    summary: str | None = SUMMARY,
    next_: str | None = NEXT,
    max_pages: int | None = MAX_PAGES,
    page_param: str | None = PAGE_PARAM,
    page_step: int | None = PAGE_STEP,
    language: str | None = LANGUAGE,
    candidate: int = CANDIDATE,
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="For a saved page: the address it was saved from (its links resolve against it).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the items as a JSON array."),
) -> None:
    """Show what a source gives now, without storing anything; for a listing page with no
    selectors given, also the other candidate selector sets with their first items."""
    selectors = _selectors(
        item, title, link, date, summary, next_, max_pages, page_param, page_step
    )
    result = read_once(
        target,
        kind.value,
        selectors,
        language,
        settings=get_settings(),
        base_url=_base_url(base_url),
        candidate=candidate - 1,
    )
    if as_json:
        typer.echo(json.dumps([item_json(i) for i in result.items], ensure_ascii=False, indent=2))
        if result.kind == "html" and result.selectors and result.selectors.inferred:
            typer.echo(f"selectors (inferred): {_selector_line(result.selectors)}", err=True)
            for line in _candidate_lines(result, candidate):
                typer.echo(line, err=True)
        return
    table = Table(title=_describe(result), title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("published (UTC)", no_wrap=True)
    table.add_column("title")
    table.add_column("url", overflow="fold", style="cyan")
    for number, parsed in enumerate(result.items, 1):
        published = iso_utc(parsed.published_at) or "—"
        table.add_row(str(number), published[:10], parsed.title or "(no title)", parsed.url or "")
    console.print(table)
    for line in _candidate_lines(result, candidate):
        console.print(line, markup=False, highlight=False)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageProblem(f"--base-url must be an http(s) address, not {value!r}")
    return value.strip()


def _candidate_lines(result: ReadResult, chosen: int, shown: int = 3) -> list[str]:
    """The inferred candidates, numbered for --candidate, each with its first items."""
    if len(result.candidates) < 2:
        return []
    lines = ["candidates (pick one with --candidate N):"]
    for number, (selectors, items) in enumerate(result.candidates, 1):
        mark = "*" if number == chosen else " "
        lines.append(f"{mark}{number}. {len(items)} items: {_selector_line(selectors)}")
        lines += [f"     - {i.title or '(no title)'}  {i.url or ''}" for i in items[:shown]]
    return lines


@app.command("add")
def add(
    target: str = typer.Argument(..., metavar="URL_OR_PATH", help="A feed, a site page or a file."),
    kind: Kind = KIND,
    item: str | None = ITEM,
    title: str | None = TITLE,
    link: str | None = LINK,
    date: str | None = DATE,
    summary: str | None = SUMMARY,
    next_: str | None = NEXT,
    max_pages: int | None = MAX_PAGES,
    page_param: str | None = PAGE_PARAM,
    page_step: int | None = PAGE_STEP,
    language: str | None = LANGUAGE,
    candidate: int = CANDIDATE,
    name: str | None = typer.Option(None, "--name", help="Name shown to editors and readers."),
    list_slug: str | None = typer.Option(None, "--list", help="Link the source to this list."),
    interval: int = typer.Option(60, "--interval", min=5, help="Minutes between fetches."),
) -> None:
    """Add a source; on a site page, the feed it announces is preferred."""
    selectors = _selectors(
        item, title, link, date, summary, next_, max_pages, page_param, page_step
    )
    url = normalise_target(target)
    result = read_once(
        url, kind.value, selectors, language, settings=get_settings(), candidate=candidate - 1
    )
    with unit_of_work() as session:
        mailing_list = get_list(session, list_slug) if list_slug is not None else None
        source = add_read_source(
            session,
            url,
            result,
            name=name or "",
            language=language or "",
            fetch_interval_minutes=interval,
        )
        if mailing_list is not None:
            link_source(session, mailing_list.id, source.id)
        audit.record(
            session, cli_actor(), "add_source", "source", source.id, {"url": source.url[:300]}
        )
        source_id, source_name = source.id, source.name
    linked = f", linked to list {list_slug}" if list_slug else ""
    console.print(f"added source {source_id} {source_name!r}{linked}", markup=False)
    console.print(_describe(result), markup=False, highlight=False)


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print the sources as a JSON array."),
) -> None:
    """The sources with their health: last success, failures in a row, last error, next fetch."""
    with unit_of_work() as session:
        sources = overview.source_rows(session)
    rows: list[dict[str, Any]] = [
        {
            "id": s.id,
            "name": s.name,
            "kind": str(s.kind),
            "url": s.url,
            "items": s.items,
            "last_success_at": iso_utc(s.last_success_at),
            "consecutive_failures": s.consecutive_failures,
            "last_error": s.last_error,
            "next_fetch_at": iso_utc(s.next_fetch_at),
        }
        for s in sorted(sources, key=lambda row: row.id)
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        console.print("no sources yet: add one with `digest sources add URL`")
        return
    table = Table(title="sources", title_justify="left")
    for column in ("id", "name", "kind", "items", "last success", "failures", "next fetch"):
        table.add_column(column)
    table.add_column("last error", style="red", overflow="fold")
    for row in rows:
        failures = int(row["consecutive_failures"])
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["kind"]),
            str(row["items"]),
            str(row["last_success_at"] or "never"),
            f"[red]{failures}[/red]" if failures else "0",
            str(row["next_fetch_at"] or "now"),
            str(row["last_error"] or ""),
        )
    console.print(table)


@app.command("set-language")
def set_language(
    source_id: int,
    language: str = typer.Argument(..., help="fr, es-es ...; '' to detect it again."),
) -> None:
    """Set a source's language: the edition of its list its items go to."""
    with unit_of_work() as session:
        source = set_source_language(session, source_id, language)
        audit.record(session, cli_actor(), "set_source_language", "source", source.id)
        console.print(f"source {source.id}: language {source.language or '-'}", markup=False)


@app.command("edit")
def edit(
    source_id: int,
    name: str | None = typer.Option(None, "--name", help="Name shown to editors and readers."),
    item: str | None = ITEM,
    title: str | None = TITLE,
    link: str | None = LINK,
    date: str | None = DATE,
    summary: str | None = SUMMARY,
    next_: str | None = NEXT,
    max_pages: int | None = MAX_PAGES,
    page_param: str | None = PAGE_PARAM,
    page_step: int | None = PAGE_STEP,
    infer: bool = typer.Option(False, "--infer", help="Forget the selectors: infer them."),
    language: str | None = typer.Option(None, "--language", help="fr ...; '' to detect it."),
    interval: int | None = typer.Option(None, "--interval", help="Minutes between fetches."),
) -> None:
    """Change a source's name, selectors (listing pages), language or fetch interval."""
    given = _selectors(item, title, link, date, summary, next_, max_pages, page_param, page_step)
    if infer and given is not None:
        raise UsageProblem("--infer forgets the selectors: give no selector with it")
    selectors: Selectors | bool | None = None if infer else (given if given else False)
    with unit_of_work() as session:
        source, changed = update_source(
            session,
            source_id,
            name=name,
            selectors=selectors,
            language=language,
            fetch_interval_minutes=interval,
        )
        audit.record(session, cli_actor(), "edit_source", "source", source.id, {"changed": changed})
        console.print(
            f"source {source.id}: changed {', '.join(changed) or 'nothing'}", markup=False
        )


@app.command("fetch")
def fetch(source_id: int) -> None:
    """Fetch one source now (disabled or not), as a collect does, and tell what it found."""
    settings = get_settings()
    with unit_of_work() as session:
        get_source(session, source_id)  # NotFound: one line, exit 2
        audit.record(session, cli_actor(), "fetch_source", "source", source_id)

    (result,) = collect_sources(
        session_factory(settings.database_url), [source_id], settings=settings
    )
    if result.error:
        raise UsageProblem(f"source {source_id}: {result.error}")
    if result.not_modified:
        console.print(f"source {source_id}: unchanged since the last fetch", markup=False)
        return
    console.print(f"source {source_id}: {result.seen} items, {result.new} new", markup=False)


def _toggle(source_id: int, enabled: bool) -> None:
    with unit_of_work() as session:
        source = set_enabled(session, source_id, enabled)
        action = "enable_source" if enabled else "disable_source"
        audit.record(session, cli_actor(), action, "source", source.id)
    console.print(f"source {source_id}: {'enabled' if enabled else 'disabled'}", markup=False)


@app.command("disable")
def disable(source_id: int) -> None:
    """Stop fetching a source (its items and history stay)."""
    _toggle(source_id, False)


@app.command("enable")
def enable(source_id: int) -> None:
    """Fetch a disabled source again, from the next collect."""
    _toggle(source_id, True)


@app.command("history")
def history(
    source_id: int,
    limit: int = typer.Option(20, "--limit", min=1, max=50, help="Fetches to show."),
) -> None:
    """A source's latest fetches: when, what they found, why they failed."""
    with unit_of_work() as session:
        get_source(session, source_id)
        rows = [
            (iso_utc(f.at) or "", str(f.outcome), f.seen, f.new, f.updated, f.error or "")
            for f in recent_fetches(session, source_id, limit)
        ]
    table = Table(title=f"source {source_id}: latest fetches", title_justify="left")
    for column in ("at", "outcome", "found", "new", "updated"):
        table.add_column(column)
    table.add_column("error", style="red", overflow="fold")
    for at, outcome, seen, new, updated, error in rows:
        table.add_row(at, outcome, str(seen), str(new), str(updated), error)
    console.print(table)
