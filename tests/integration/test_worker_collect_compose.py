"""Collecting and composing on real `digest worker` processes over Redis and PostgreSQL, with
sources served on 127.0.0.1 and beat's ticks sent to the broker as beat sends them.

A scheduled fire collects its list's sources, then composes up to the fire time; a lost or
failed attempt stays overdue until a later tick makes its one issue; racing ticks and a task
delivered several times make one issue; the per-host limit holds across worker processes; and
no session of ours sits idle in a transaction while a fetch waits on the network.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select, text

from digest.db import get_engine, session_scope
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.models import Issue, IssueItem, Item, Source, utcnow
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import import_csv
from tests.conftest import truncate_all
from tests.fixtures.sources.server import Page, SourceServer, serving
from tests.helpers import run_digest
from tests.processes import RedisServer, WorkerProcess, reap, require_redis_server, wait_until

HOST = "127.0.0.1"
LEASE_SECONDS = 4


@pytest.fixture
def store(pg_url: str) -> str:
    truncate_all(pg_url)
    return pg_url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def http() -> Iterator[SourceServer]:
    with serving() as server:
        yield server


def worker_env(store: str, broker: RedisServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "DIGEST_DATABASE_URL": store,
        "DIGEST_BROKER_URL": broker.url,
        "DIGEST_SECRET_KEY": "test-secret",
        "DIGEST_ALLOW_PRIVATE_FETCH": "1",
        "DIGEST_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DIGEST_SCHEDULE_LEASE_SECONDS": str(LEASE_SECONDS),
        "DIGEST_SCHEDULE_RETRY_SECONDS": "1",
        "DIGEST_SCHEDULE_OVERDUE_MINUTES": "0",
    }
    env.update({f"DIGEST_{k.upper()}": v for k, v in extra.items()})
    return env


def start_workers(env: dict[str, str], tmp_path: Path, n: int = 1, **kw: Any) -> list[Any]:
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log", **kw) for i in range(n)]
    for w in workers:
        w.wait_ready()
    return workers


def tick(broker: RedisServer, task: str, *args: Any) -> None:
    """What beat does: send the task to its queue."""
    queue = "collect" if "collect" in task else "default"
    Celery(broker=broker.url).send_task(f"workers.tasks.{task}", args=args, queue=queue)


def succeeded(worker: WorkerProcess, task: str) -> list[str]:
    """What each run of `task` on this worker returned (as Celery logs it)."""
    pattern = rf"workers\.tasks\.{task}\[[^]]+\] succeeded in [\d.]+s: (.*)"
    return re.findall(pattern, worker.output())


def rss(*items: tuple[str, datetime]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>https://ex.org/{title.replace(' ', '-')}</link>"
        f"<pubDate>{format_datetime(when.replace(tzinfo=UTC))}</pubDate></item>"
        for title, when in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>T</title>"
        f"<link>https://ex.org/</link><description>d</description>{entries}</channel></rss>"
    ).encode()


def fire_an_hour_ago() -> datetime:
    return (utcnow() - timedelta(hours=1)).replace(second=0, microsecond=0)


def scheduled_list(
    store: str,
    fire: datetime,
    source_urls: list[str],
    *,
    auto_approve: bool = False,
    subscribers: int = 0,
    manual_item: bool = False,
) -> int:
    """A list whose daily schedule fired at `fire`, last checked a minute before it (as beat
    would have), with feed sources never collected yet."""
    with session_scope(store) as session:
        lst = create_list(
            session,
            slug="news",
            name="News",
            lookback_days=30,
            schedule_cron=f"{fire.minute} {fire.hour} * * *",
            auto_approve=auto_approve,
        )
        lst.created_at = fire - timedelta(days=2)
        lst.schedule_checked_at = fire - timedelta(minutes=1)
        for n, url in enumerate(source_urls):
            source = Source(name=f"Feed {n}", url=url, kind="feed")
            session.add(source)
            session.flush()
            link_source(session, lst.id, source.id)
        if manual_item:  # already in the store: composing always finds something
            desk = Source(name="Desk", url="manual:desk", kind="manual")
            session.add(desk)
            session.flush()
            link_source(session, lst.id, desk.id)
            session.add(
                Item(
                    source_id=desk.id,
                    guid="desk",
                    title="From the desk",
                    published_at=fire - timedelta(hours=2),
                    first_seen_at=fire - timedelta(hours=2),
                )
            )
        if subscribers:
            rows = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(subscribers))
            import_csv(session, lst.id, io.StringIO("email,name\n" + rows))
        return lst.id


def issues(store: str) -> list[tuple[int, str, datetime, list[str]]]:
    """(id, status, period end, item titles) of every issue."""
    with session_scope(store) as session:
        found = []
        for issue in session.scalars(select(Issue).order_by(Issue.id)):
            titles = session.scalars(
                select(Item.title)
                .join(IssueItem, IssueItem.item_id == Item.id)
                .where(IssueItem.issue_id == issue.id)
                .order_by(IssueItem.position)
            )
            found.append((issue.id, issue.status, issue.period_end, list(titles)))
        return found


def scheduled(store: str) -> list[dict[str, Any]]:
    """The scheduled issues as stored (read as SQL: the test needs no model to run)."""
    with get_engine(store).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, fire_at, state, attempts, lease_token, issue_id, last_error"
                " FROM scheduled_issues ORDER BY id"
            )
        )
        return [dict(row._mapping) for row in rows]


def settled(store: str) -> list[dict[str, Any]]:
    found = scheduled(store)
    return found if found and all(r["state"] in ("composed", "empty") for r in found) else []


def overdue_cli(env: dict[str, str]) -> tuple[int, str]:
    result = run_digest("issues", "overdue", env=env, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_a_scheduled_fire_collects_then_composes_up_to_its_time(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """A fresh deployment: the list's source was never collected. The fire's issue holds
    what was published up to the fire, collected on the workers just before composing; the
    list auto-approves, so its readers get it."""
    fire = fire_an_hour_ago()
    feed = rss(
        ("Published after the fire", fire + timedelta(minutes=5)),
        ("Published just before the fire", fire - timedelta(minutes=2)),
    )
    url = http.add("/feed.xml", Page(feed, "application/rss+xml"))
    scheduled_list(store, fire, [url], auto_approve=True, subscribers=3)
    env = worker_env(store, broker, tmp_path)
    workers = start_workers(env, tmp_path)
    try:
        tick(broker, "compose_due_lists")

        def sent() -> bool:
            made = issues(store)
            return bool(made) and made[0][1] == "sent"

        wait_until(sent, 60, 0.2, "the fire's issue to be sent")
        tick(broker, "compose_due_lists")  # the next minute: the fire is not made twice
        wait_until(lambda: len(succeeded(workers[0], "compose_due_lists")) == 2, 30)
    finally:
        reap(workers)
    ((issue_id, _status, period_end, titles),) = issues(store)
    assert titles == ["Published just before the fire"]
    assert period_end == fire
    (record,) = scheduled(store)
    assert (record["fire_at"], record["state"], record["issue_id"]) == (fire, "composed", issue_id)
    assert record["attempts"] == 1
    assert http.hits["/feed.xml"] == 1
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 3


def test_a_lost_attempt_is_overdue_until_a_later_tick_makes_its_one_issue(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """The worker is killed (-9) while the fire's attempt is collecting: its tasks are lost.
    `digest issues overdue` says so; the next tick after the lease takes it over into one
    issue, and the lost attempt's tasks, delivered again later, change nothing."""
    fire = fire_an_hour_ago()
    feed = rss(("Published just before the fire", fire - timedelta(minutes=2)))
    url = http.add("/feed.xml", Page(feed, "application/rss+xml", delay=30))
    scheduled_list(store, fire, [url])
    env = worker_env(store, broker, tmp_path)
    first = WorkerProcess(env, tmp_path / "first.log")
    second: WorkerProcess | None = None
    try:
        first.wait_ready()
        tick(broker, "compose_due_lists")
        wait_until(lambda: http.in_flight, 30, 0.05, "the attempt to be fetching")
        ((record_id, token),) = [(r["id"], r["lease_token"]) for r in scheduled(store)]
        first.kill9()
        http.add("/feed.xml", Page(feed, "application/rss+xml"))

        def lost() -> str:
            code, out = overdue_cli(env)
            return out if code == 1 and "did not finish in time" in out else ""

        shown = wait_until(lost, 30, 0.5, "the lost attempt to show as overdue")
        assert "news" in shown and "collecting" in shown
        assert issues(store) == []

        second = WorkerProcess(env, tmp_path / "second.log")
        second.wait_ready()
        tick(broker, "compose_due_lists")
        wait_until(lambda: settled(store), 60, 0.2, "the scheduled issue to settle")
        # The lost attempt's tasks come back (Redis redelivers them after its visibility
        # timeout): fenced by their old lease token, they do nothing.
        tick(broker, "collect_scheduled_issue", record_id, token)
        tick(broker, "compose_scheduled_issue", record_id, token)
        wait_until(lambda: succeeded(second, "compose_scheduled_issue")[1:], 30)
        wait_until(lambda: succeeded(second, "collect_scheduled_issue")[1:], 30)
    finally:
        reap([first, second])
    ((issue_id, _status, period_end, titles),) = issues(store)
    assert titles == ["Published just before the fire"] and period_end == fire
    (record,) = scheduled(store)
    assert (record["state"], record["issue_id"], record["attempts"]) == ("composed", issue_id, 2)
    assert sorted(succeeded(second, "compose_scheduled_issue")) == sorted(["None", str(issue_id)])
    assert sorted(succeeded(second, "collect_scheduled_issue")) == ["'collected'", "'taken'"]
    assert overdue_cli(env) == (0, "no scheduled issue is overdue\n")


def test_a_failing_compose_is_retried_until_its_issue_exists(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """Composing raises (an editor's draft is still open): the attempt fails, the overview
    says why, and once the draft is discarded a later tick makes the issue."""
    fire = fire_an_hour_ago()
    feed = rss(("Published just before the fire", fire - timedelta(minutes=2)))
    url = http.add("/feed.xml", Page(feed, "application/rss+xml"))
    list_id = scheduled_list(store, fire, [url], manual_item=True)
    with session_scope(store) as session:
        draft = compose_issue(session, list_id, fire - timedelta(hours=1))
        assert draft is not None
        draft_id = draft.id
    env = worker_env(store, broker, tmp_path)
    workers = start_workers(env, tmp_path)
    try:
        tick(broker, "compose_due_lists")
        wait_until(
            lambda: [r for r in scheduled(store) if r["state"] == "failed"], 60, 0.2, "a failure"
        )
        code, out = overdue_cli(env)
        assert code == 1 and "failed" in out and "approve or discard it first" in out, out
        with session_scope(store) as session:
            lifecycle.discard_draft(session, draft_id)

        def retried() -> bool:  # a tick a second: the retry is due a second after the failure
            tick(broker, "compose_due_lists")
            return settles_within(store, 1.0)

        wait_until(retried, 60, 0, "a later tick to make the issue")
    finally:
        reap(workers)
    ((issue_id, _status, period_end, titles),) = issues(store)
    assert titles == ["Published just before the fire", "From the desk"] and period_end == fire
    (record,) = scheduled(store)
    assert (record["state"], record["issue_id"], record["attempts"]) == ("composed", issue_id, 2)


def settles_within(store: str, seconds: float) -> bool:
    try:
        wait_until(lambda: settled(store), seconds, 0.1)
    except AssertionError:
        return False
    return True


def test_racing_ticks_and_a_task_delivered_thrice_make_one_issue(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    fire = fire_an_hour_ago()
    feed = rss(("Published just before the fire", fire - timedelta(minutes=2)))
    url = http.add("/feed.xml", Page(feed, "application/rss+xml", delay=2))
    scheduled_list(store, fire, [url], manual_item=True)
    env = worker_env(store, broker, tmp_path, schedule_lease_seconds="120")
    workers = start_workers(env, tmp_path, n=2, concurrency=3)
    try:
        tick(broker, "compose_due_lists")
        tick(broker, "compose_due_lists")
        wait_until(lambda: http.in_flight, 30, 0.05, "the attempt to be fetching")
        ((record_id, token),) = [(r["id"], r["lease_token"]) for r in scheduled(store)]
        for _ in range(3):  # the compose step delivered again and again, while it collects
            tick(broker, "compose_scheduled_issue", record_id, token)
        wait_until(lambda: settled(store), 60, 0.2, "the scheduled issue to settle")

        def composes() -> list[str]:
            done = [r for w in workers for r in succeeded(w, "compose_scheduled_issue")]
            return done if len(done) == 4 else []

        runs = wait_until(composes, 60, 0.2, "every compose to have run")
        ticks = [r for w in workers for r in succeeded(w, "compose_due_lists")]
    finally:
        reap(workers)
    assert sorted(ticks) == sorted(["[]", f"[{record_id}]"])  # one claim between two ticks
    (issue,) = issues(store)
    assert sorted(runs) == sorted(["None", "None", "None", str(issue[0])])
    (record,) = scheduled(store)
    assert (record["state"], record["issue_id"], record["attempts"]) == ("composed", issue[0], 1)


def test_the_per_host_limit_holds_across_two_workers(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """Twelve sources on one host, in four batches over two workers of two processes each:
    never more than `collect_per_host` requests to the host at once, however many tasks."""
    feed = rss(("A story", datetime(2024, 2, 1)))
    with session_scope(store) as session:
        for n in range(12):
            url = http.add(f"/s{n}.xml", Page(feed, "application/rss+xml", delay=0.4))
            session.add(Source(name=f"Feed {n}", url=url, kind="feed"))
    env = worker_env(store, broker, tmp_path, collect_per_host="2", collect_batch_size="3")
    workers = start_workers(env, tmp_path, n=2, concurrency=2)
    try:
        tick(broker, "collect_due_sources")

        def collected() -> bool:
            with session_scope(store) as session:
                done = select(func.count()).where(Source.last_success_at.is_not(None))
                return session.scalar(done) == 12

        wait_until(collected, 60, 0.2, "every source to be collected")
        batches = [succeeded(w, "collect_sources") for w in workers]
    finally:
        reap(workers)
    assert http.peak_by_host[HOST] == 2, http.peak_by_host
    assert all(batches), f"both workers collect: {batches}"
    assert sum(len(b) for b in batches) == 4
    # Each batch read the recent titles once, when it stored its first new item (the same
    # story in every feed: stored once, then recognised by its URL).
    assert all("'title_reads': 1" in r for b in batches for r in b)


def test_no_session_is_idle_in_a_transaction_while_fetching(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """While the server holds the requests of a collect batch and of a scheduled issue's
    collection open (3 s each), PostgreSQL shows no session of ours idle in a transaction
    for a second or more: a short transaction storing a source is idle between its
    statements for milliseconds, one held open across a fetch for the whole fetch."""
    fire = fire_an_hour_ago()
    feed = rss(("Published just before the fire", fire - timedelta(minutes=2)))
    url = http.add("/feed.xml", Page(feed, "application/rss+xml", delay=3))
    other = http.add("/other.xml", Page(feed, "application/rss+xml", delay=3))
    scheduled_list(store, fire, [url])
    with session_scope(store) as session:
        session.add(Source(name="Other", url=other, kind="feed"))
    env = worker_env(store, broker, tmp_path)
    workers = start_workers(env, tmp_path, concurrency=2)
    database = get_engine(store).url.database
    idle: list[int] = []
    held = 0
    try:
        tick(broker, "compose_due_lists")
        tick(broker, "collect_due_sources")
        wait_until(lambda: http.in_flight, 30, 0.05, "a fetch to be held")
        deadline = time.monotonic() + 30
        # Three requests: the scheduled issue's collection, and the batch's two sources.
        while time.monotonic() < deadline and (http.in_flight or sum(http.hits.values()) < 3):
            if http.in_flight:
                held += 1
                with get_engine(store).connect() as conn:
                    idle.append(
                        conn.scalar(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = :db"
                                " AND state LIKE 'idle in transaction%'"
                                " AND now() - state_change >= interval '1 second'"
                            ),
                            {"db": database},
                        )
                        or 0
                    )
            time.sleep(0.05)
    finally:
        reap(workers)
    assert held >= 10, "the test looked while a request was held"
    assert max(idle) == 0, f"sessions idle in a transaction during a fetch: {idle}"
    assert sum(http.hits.values()) == 3


def test_tasks_an_earlier_version_enqueued_still_collect_and_compose(
    store: str, broker: RedisServer, http: SourceServer, tmp_path: Path
) -> None:
    """Queued before an upgrade: `collect_source` (one source) collects it as a batch of
    one; `compose_list` (sent after the old beat had moved the list's checkpoint past the
    fire) records the fire, so the next tick composes it instead of the fire being lost."""
    fire = fire_an_hour_ago()
    feed = rss(("Published just before the fire", fire - timedelta(minutes=2)))
    url = http.add("/feed.xml", Page(feed, "application/rss+xml"))
    list_id = scheduled_list(store, fire, [url])
    with session_scope(store) as session:
        source_id = session.scalar(select(Source.id))
        session.execute(
            text("UPDATE lists SET schedule_checked_at = :t"), {"t": fire + timedelta(minutes=1)}
        )
    env = worker_env(store, broker, tmp_path)
    (worker,) = start_workers(env, tmp_path)
    try:
        tick(broker, "collect_source", source_id)
        (collected,) = wait_until(lambda: succeeded(worker, "collect_source"), 60)
        assert "'sources': 1, 'new': 1, 'errors': 0" in collected
        tick(broker, "compose_due_lists")  # the checkpoint is past the fire: nothing to do
        wait_until(lambda: succeeded(worker, "compose_due_lists"), 60)
        assert scheduled(store) == []
        tick(broker, "compose_list", list_id)
        wait_until(lambda: succeeded(worker, "compose_list"), 60)
        ((fired, state),) = [(r["fire_at"], r["state"]) for r in scheduled(store)]
        assert fired == fire and state not in ("composed", "empty")
        tick(broker, "compose_due_lists")
        wait_until(lambda: settled(store), 60, 0.2, "the recorded fire to be composed")
    finally:
        reap([worker])
    ((issue_id, status, period_end, titles),) = issues(store)
    assert (status, period_end, titles) == ("draft", fire, ["Published just before the fire"])
    (record,) = scheduled(store)
    assert (record["state"], record["issue_id"]) == ("composed", issue_id)
