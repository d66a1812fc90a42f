"""`digest lists`: create and show lists."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from digest import overview
from digest.accounts import audit
from digest.cli.common import cli_actor, console, unit_of_work
from digest.delivery.audience import list_editions
from digest.models import Grouping, OptIn
from digest.sources.registry import get_source
from digest.subscribers.list_settings import describe_schedule
from digest.subscribers.lists import (
    create_list,
    get_list,
    link_source,
    set_postal_address,
    set_private,
    unlink_source,
    update_list,
)
from digest.subscribers.topics import (
    configure_readers,
    define_topic,
    delete_topic,
    list_topics,
)

app = typer.Typer(help="Manage lists.", no_args_is_help=True)


@app.command("create")
def create(
    slug: str,
    name: Annotated[str, typer.Option(help="The list's name, shown in every issue.")],
    description: str = "",
    from_name: str | None = None,
    from_email: str | None = None,
    language: Annotated[str, typer.Option(help="Locale of dates and labels, e.g. en, fr.")] = "en",
    timezone: str = "UTC",
    schedule: Annotated[
        str,
        typer.Option(help="monthly 1 09:00, weekly mon 09:00, daily 09:00 or cron (list's zone)."),
    ] = "0 9 1 * *",
    grouping: Annotated[Grouping, typer.Option(help="How items are grouped.")] = Grouping.MONTH,
    lookback_days: Annotated[int, typer.Option(help="What the first issue covers.")] = 31,
    subject: Annotated[str, typer.Option(help="Uses {list} {month} {count} {number}.")] = (
        "{list}: {month}"
    ),
    auto_approve: bool = False,
    private: Annotated[bool, typer.Option(help="No public archive of its issues.")] = False,
    postal_address: Annotated[
        str, typer.Option(help="Shown in every issue's footer (lines separated by \\n).")
    ] = "",
    reply_to: str | None = None,
    opt_in: Annotated[OptIn, typer.Option(help="double: a mailed link confirms.")] = OptIn.DOUBLE,
    send_at: Annotated[str, typer.Option(help="HH:MM in each reader's zone; '' at once.")] = "",
    editions: Annotated[str, typer.Option(help="Other language editions: fr,es.")] = "",
) -> None:
    """Create a list (every setting checked as the editor's form checks it)."""
    with unit_of_work() as session:
        lst = create_list(
            session,
            slug=slug,
            name=name,
            description=description,
            from_name=from_name,
            from_email=from_email,
            language=language,
            timezone=timezone,
            schedule_cron=schedule,
            grouping=grouping,
            lookback_days=lookback_days,
            subject_template=subject,
            auto_approve=auto_approve,
            private=private,
            postal_address=postal_address.replace("\\n", "\n"),
            reply_to=reply_to,
            opt_in=opt_in,
            send_local_time=send_at,
            editions=[e for e in editions.split(",") if e.strip()],
        )
        audit.record(session, cli_actor(), "create_list", "list", lst.slug)
        console.print(f"created list {lst.slug} (id {lst.id})")


@app.command("postal-address")
def postal_address(
    slug: str,
    address: Annotated[str, typer.Argument(help="The address; lines separated by \\n.")],
) -> None:
    """Set the postal address every issue of the list shows in its footer."""
    with unit_of_work() as session:
        lst = set_postal_address(session, slug, address.replace("\\n", "\n"))
        audit.record(session, cli_actor(), "postal_address", "list", lst.slug)
        shown = lst.postal_address.replace("\n", ", ") or "(none)"
        console.print(f"list {lst.slug}: postal address {shown}", markup=False)


@app.command("archive")
def set_archive(
    slug: str,
    private: Annotated[
        bool, typer.Option("--private/--public", help="Hide or show the public archive.")
    ],
) -> None:
    """Make a list's archive of sent issues (and its Atom feed) private or public."""
    with unit_of_work() as session:
        lst = set_private(session, slug, private)
        audit.record(session, cli_actor(), "set_archive", "list", lst.slug, {"private": private})
        shown = "private" if lst.private else f"public at /archive/{lst.slug}"
        console.print(f"list {lst.slug}: archive {shown}", markup=False)


@app.command("list")
def list_lists() -> None:
    """Show every list with its subscribers by status."""
    with unit_of_work() as session:
        rows = overview.list_rows(session)
    table = Table("id", "slug", "name", "schedule", "sources", "confirmed", "other")
    for row in sorted(rows, key=lambda r: r.id):
        others = {k: v for k, v in row.subscribers.items() if v and k != "confirmed"}
        table.add_row(
            str(row.id),
            row.slug,
            row.name,
            f"{row.schedule_cron} {row.timezone}",
            str(row.sources),
            str(row.subscribers["confirmed"]),
            ", ".join(f"{k} {v}" for k, v in sorted(others.items())) or "-",
        )
    console.print(table)


@app.command("show")
def show(slug: str) -> None:
    """Show one list's settings."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        for field in (
            "id",
            "slug",
            "name",
            "language",
            "timezone",
            "schedule_cron",
            "grouping",
            "lookback_days",
            "subject_template",
            "preheader_template",
            "auto_approve",
            "private",
            "postal_address",
            "editions",
            "send_local_time",
            "opt_in",
            "from_name",
            "from_email",
            "reply_to",
        ):
            console.print(f"{field}: {getattr(lst, field)}", markup=False)
        for topic in list_topics(session, lst.id):
            console.print(f"topic: {topic.slug} ({topic.name})", markup=False)
        for src in lst.sources:
            console.print(f"source: {src.id} {src.name} <{src.url}>", markup=False)


@app.command("readers")
def readers(
    slug: str,
    editions: Annotated[
        str | None,
        typer.Option(help="Language editions besides the list's own, comma-separated: fr,es."),
    ] = None,
    send_at: Annotated[
        str | None,
        typer.Option(help="HH:MM: reach each reader at that time in their zone; '' at once."),
    ] = None,
) -> None:
    """Set a list's language editions and the local time its issues reach readers at."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        configure_readers(
            session,
            lst,
            editions=editions.split(",") if editions is not None else None,
            send_local_time=send_at,
        )
        audit.record(session, cli_actor(), "set_readers", "list", lst.slug)
        when = f"at {lst.send_local_time} local time" if lst.send_local_time else "at once"
        editions_shown = ", ".join(list_editions(lst))
        console.print(f"{lst.slug}: editions {editions_shown}; sends {when}", markup=False)


@app.command("topic")
def topic(
    slug: str,
    topic_slug: str,
    name: Annotated[str, typer.Option(help="What readers see.")] = "",
    source: Annotated[list[int] | None, typer.Option(help="A source id; repeat for more.")] = None,
    category: Annotated[list[str] | None, typer.Option(help="A feed category; repeat.")] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="A keyword; repeat.")] = None,
) -> None:
    """Define (or redefine) a topic of a list: its sources, feed categories or keywords."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        found = define_topic(
            session,
            lst,
            topic_slug,
            name or topic_slug,
            source_ids=source or [],
            categories=category or [],
            keywords=keyword or [],
        )
        audit.record(session, cli_actor(), "define_topic", "list", lst.slug, {"topic": found.slug})
        console.print(f"topic {found.slug} of {lst.slug} (id {found.id})", markup=False)


@app.command("topic-delete")
def topic_delete(slug: str, topic_slug: str) -> None:
    """Delete a topic; its readers keep their other topics (none left: everything)."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        delete_topic(session, lst, topic_slug)
        audit.record(session, cli_actor(), "delete_topic", "list", lst.slug, {"topic": topic_slug})
    console.print(f"deleted topic {topic_slug}", markup=False)


@app.command("topics")
def topics(slug: str) -> None:
    """Show a list's topics."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        table = Table("id", "slug", "name", "sources", "categories", "keywords")
        for t in list_topics(session, lst.id):
            table.add_row(
                str(t.id),
                t.slug,
                Text(t.name),
                ", ".join(map(str, t.source_ids)) or "-",
                Text(", ".join(t.categories) or "-"),
                Text(", ".join(t.keywords) or "-"),
            )
    console.print(table)


@app.command("edit")
def edit(
    slug: str,
    name: str | None = None,
    description: str | None = None,
    from_name: Annotated[str | None, typer.Option(help="'' for the service's.")] = None,
    from_email: Annotated[str | None, typer.Option(help="'' for the service's.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="'' for none.")] = None,
    postal_address: Annotated[str | None, typer.Option(help="Lines separated by \\n.")] = None,
    language: str | None = None,
    timezone: Annotated[str | None, typer.Option(help="An IANA zone: Europe/Paris.")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="monthly 1 09:00, weekly mon 09:00, daily 09:00 or cron.")
    ] = None,
    send_at: Annotated[str | None, typer.Option(help="HH:MM in each reader's zone; ''.")] = None,
    opt_in: OptIn | None = None,
    grouping: Grouping | None = None,
    subject: Annotated[
        str | None, typer.Option(help="Uses {list} {month} {count} {number}.")
    ] = None,
    preheader: str | None = None,
    lookback_days: int | None = None,
    max_items: int | None = None,
    auto_approve: Annotated[bool | None, typer.Option("--auto-approve/--no-auto-approve")] = None,
    private: Annotated[bool | None, typer.Option("--private/--public")] = None,
    editions: Annotated[str | None, typer.Option(help="fr,es; '' for none.")] = None,
) -> None:
    """Change some settings of a list (those given); all are checked, none is changed when
    one is refused."""
    given = {
        "name": name, "description": description, "from_name": from_name,
        "from_email": from_email, "reply_to": reply_to,
        "postal_address": postal_address.replace("\\n", "\n") if postal_address else postal_address,
        "language": language, "timezone": timezone, "schedule": schedule,
        "send_local_time": send_at, "opt_in": opt_in.value if opt_in else None,
        "grouping": grouping.value if grouping else None, "subject_template": subject,
        "preheader_template": preheader, "lookback_days": lookback_days, "max_items": max_items,
        "auto_approve": auto_approve, "private": private,
        "editions": [e for e in editions.split(",") if e.strip()] if editions is not None else None,
    }  # fmt: skip
    changes = {k: v for k, v in given.items() if v is not None}
    with unit_of_work() as session:
        lst, changed = update_list(session, slug, changes)
        audit.record(session, cli_actor(), "edit_list", "list", lst.slug, {"changed": changed})
        schedule_text = describe_schedule(lst.schedule_cron)
        shown = ", ".join(changed) or "nothing"
        console.print(
            f"list {lst.slug}: changed {shown}; {schedule_text} {lst.timezone}", markup=False
        )


@app.command("link")
def link(slug: str, source_id: int) -> None:
    """Have a source feed a list."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        source = get_source(session, source_id)
        link_source(session, lst.id, source.id)
        audit.record(
            session, cli_actor(), "link_source", "list", lst.slug, {"source_id": source.id}
        )
    console.print(f"source {source_id} feeds list {slug}", markup=False)


@app.command("unlink")
def unlink(slug: str, source_id: int) -> None:
    """Stop a source feeding a list (its items stay; the list's topics forget it)."""
    with unit_of_work() as session:
        lst = get_list(session, slug)
        if not unlink_source(session, lst.id, source_id):
            console.print(f"source {source_id} did not feed list {slug}", markup=False)
            return
        audit.record(
            session, cli_actor(), "unlink_source", "list", lst.slug, {"source_id": source_id}
        )
    console.print(f"source {source_id} no longer feeds list {slug}", markup=False)
