"""Send one personalised issue to N recipients through K real `digest worker` processes.

PostgreSQL store (a scratch database), a private redis-server on a free port as the Celery
broker, Postfix's smtp-sink on 127.0.0.1 as the receiver (aiosmtpd tops out near 850 msg/s
and would be the bottleneck), a realistic 20-item digest rendered through MJML. Then
smtp-source against the same sink with messages of the same size over the same number of
sessions, as the reference. Prints one JSON line:
{"recipients", "seconds", "msgs_per_s", "reference_msgs_per_s", "ratio", "peak_rss_mb",
 "plan_seconds", "cpu_per_1000", ...}; peak_rss_mb is the largest VmHWM of the workers' pool
processes. "cpu_per_1000" is CPU seconds (user + sys, and each) per 1,000 messages: of the
`digest worker` processes and their pool (the figure to judge a change by on a busy machine,
where the wall-clock ratio is noisy), of the PostgreSQL backends and redis-server serving them,
of smtp-source in its reference runs, and of smtp-sink during each.

The reference runs twice, just before the workers start and just after they stop, and the ratio
is taken against the mean of the two ("reference_runs" has both): a shared virtual machine's
speed drifts by tens of per cent over a minute, and one reference on one side of the send reads
that drift as a change in the ratio. "timeline" splits the send's seconds: until the first
copy is recorded sent, from the first to the last (the wire), and from the last until the
issue is marked sent; "sessions_busy" is how many sessions were waiting on a reply on average
over the wire's seconds, out of "sessions".

    .venv/bin/python benchmarks/send.py --recipients 100000 --workers 2

With `--variants N` (and `--editions E`, default 3) the list has E language editions and
readers spread over N topic sets in each: approval renders and freezes every (edition, topic
set) variant, timed as "approve_seconds"; each copy is then personalised from its variant.
`--approve-only` stops after approval and planning.

    .venv/bin/python benchmarks/send.py --recipients 1000000 --variants 64 --approve-only

`--profile DIR` samples every pool process with py-spy during the send (DIR/pool-PID.txt,
collapsed stacks per thread) and writes the functions that hold the most samples, by their own
time and with their callees, to DIR/top.txt (sampling costs CPU: compare CPU figures of runs
without it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter as CounterT
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ADMIN, load_subscribers, scratch_database

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
DIGEST = str(Path(sys.executable).with_name("digest"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


@contextmanager
def running(args: list[str], port: int, what: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, what)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sink_args(port: int) -> list[str]:
    # -u: smtp-sink refuses to run as root without a user to switch to.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    return [SINK, *user, f"127.0.0.1:{port}", "1024"]


def redis_args(port: int, workdir: str) -> list[str]:
    return [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip


def make_issue(url: str, recipients: int, items: int = 20) -> tuple[int, float, float]:
    """A list of `recipients` confirmed subscribers and an approved, frozen issue of `items`
    news items, then planned. Returns (issue id, load seconds, plan seconds)."""
    from digest.config import get_settings
    from digest.db import session_scope
    from digest.delivery.prepare import prepare_issue_message
    from digest.models import Issue, MailingList
    from digest.pipeline import start_sending
    from digest.render.issue import render_issue
    from tests.fixtures.sample_issue import sample_issue_view

    view = sample_issue_view(items=items)
    rendered = render_issue(view)
    with session_scope(url) as s:
        lst = MailingList(slug="bench", name=view.list_name, from_email="news@example.org")
        s.add(lst)
        s.flush()
        issue = Issue(list_id=lst.id, number=1, subject=view.subject, status="approved",
                      html=rendered.html, text=rendered.text,
                      slot_marker=rendered.slots.marker)  # fmt: skip
        s.add(issue)
        s.flush()
        prepare_issue_message(s, issue.id, get_settings())
        list_id, issue_id = lst.id, issue.id
    load_seconds = load_subscribers(url, list_id, recipients)
    started = time.perf_counter()
    with session_scope(url) as s:
        planned = start_sending(s, issue_id).planned
    plan_seconds = time.perf_counter() - started
    assert planned == recipients, (planned, recipients)
    return issue_id, load_seconds, plan_seconds


EDITION_LANGUAGES = ("en", "fr", "es", "de", "ar", "pt")
APPROVE_CPU: list[float] = []  # this process's CPU seconds in approval (the machine may be busy)


def load_readers(url: str, list_id: int, count: int, editions: int, topic_sets: list[str]) -> float:
    """COPY `count` confirmed readers in: reader i reads edition i % editions and topic set
    (i // editions) % len(topic_sets), so every (edition, topic set) pair has readers."""
    import psycopg

    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY subscribers (id, email, name, attributes, language, created_at) FROM STDIN"
        ) as cp:
            for i in range(1, count + 1):
                language = EDITION_LANGUAGES[i % editions]
                cp.write_row((i, f"reader{i}@example.org", f"Reader {i}", "{}", language,
                              "2024-01-01"))  # fmt: skip
        with cur.copy(
            "COPY subscriptions (id, list_id, subscriber_id, status, preferences, topic_ids,"
            " created_at) FROM STDIN"
        ) as cp:
            for i in range(1, count + 1):
                topics = topic_sets[(i // editions) % len(topic_sets)]
                cp.write_row((i, list_id, i, "confirmed", "{}", topics, "2024-01-01"))
        cur.execute("SELECT setval('subscribers_id_seq', %s)", (count,))
        cur.execute("SELECT setval('subscriptions_id_seq', %s)", (count,))
        cur.execute("ANALYZE subscribers; ANALYZE subscriptions")
    return time.perf_counter() - started


def make_variant_issue(
    url: str, recipients: int, items: int, editions: int, variants: int
) -> tuple[int, float, float, float, int]:
    """A list with `editions` language editions (a source each, `items` news items each)
    and enough topics for `variants` topic sets (every subset of them, "all" first), its
    readers spread over every (edition, topic set), and a draft composed; then approved
    through `digest.pipeline.approve_issue` (rendering every variant: the timed figure) and
    planned. Returns (issue id, load s, approve s, plan s, variants frozen)."""
    from digest.config import get_settings
    from digest.db import session_scope
    from digest.issues.compose import compose_issue
    from digest.models import Item, MailingList, Source
    from digest.pipeline import approve_issue, start_sending
    from digest.subscribers.lists import link_source
    from digest.subscribers.topics import define_topic, topic_key
    from tests.fixtures.sample_issue import NEWS

    topics = max(1, (variants - 1).bit_length())  # 2**topics subsets cover the sets wanted
    languages = EDITION_LANGUAGES[:editions]
    with session_scope(url) as s:
        lst = MailingList(slug="bench", name="SSE News", from_email="news@example.org",
                          language=languages[0], editions=list(languages[1:]),
                          lookback_days=3650)  # fmt: skip
        s.add(lst)
        s.flush()
        for language in languages:
            source = Source(name=f"News ({language})", url=f"https://news.example.org/{language}/",
                            kind="html", language=language)  # fmt: skip
            s.add(source)
            s.flush()
            link_source(s, lst.id, source.id)
            for k in range(items):
                title, published, summary = NEWS[k % len(NEWS)]
                s.add(Item(source_id=source.id, guid=f"{language}-{k}",
                           url=f"https://news.example.org/{language}/{k}",
                           canonical_url=f"https://news.example.org/{language}/{k}",
                           title=f"{title} ({language})", summary_text=summary,
                           summary_html=f"<p>{summary}</p>" if summary else "",
                           published_at=published, categories=[f"c{k % topics}"]))  # fmt: skip
        ids = [
            define_topic(s, lst, f"t{j}", f"Topic {j}", categories=[f"c{j}"]).id
            for j in range(topics)
        ]
        list_id = lst.id
    # Topic sets: "" (everything) first, then subsets of the topics, `variants` in all.
    topic_sets = [""] + [
        topic_key(ids[j] for j in range(topics) if mask >> j & 1) for mask in range(1, 2**topics)
    ]
    topic_sets = topic_sets[:variants]
    load_seconds = load_readers(url, list_id, recipients, editions, topic_sets)
    with session_scope(url) as s:
        issue = compose_issue(s, list_id)
        assert issue is not None
        issue_id = issue.id
    started, cpu = time.perf_counter(), time.process_time()
    with session_scope(url) as s:
        frozen = approve_issue(s, issue_id, get_settings()).variants
    approve_seconds = time.perf_counter() - started
    APPROVE_CPU.append(time.process_time() - cpu)
    started = time.perf_counter()
    with session_scope(url) as s:
        planned = start_sending(s, issue_id).planned
    plan_seconds = time.perf_counter() - started
    assert planned == recipients, (planned, recipients)
    return issue_id, load_seconds, approve_seconds, plan_seconds, frozen


def message_size(url: str, issue_id: int) -> int:
    """The mean size of the copies planned, each personalised from its variant (or from the
    issue's own message): smtp-source's reference sends messages of this size. With topic
    sets most readers get a variant of a few items, far smaller than the whole issue."""
    from sqlalchemy import func, select

    from digest.config import get_settings
    from digest.db import session_scope
    from digest.delivery.message import MessageTemplate
    from digest.delivery.recipient import Recipient
    from digest.keys import signing_keys
    from digest.models import Delivery, Issue, IssueVariant
    from digest.tokens import Signer

    signer = Signer(signing_keys(get_settings()))
    reader = Recipient(1, 1, "reader1@example.org", "Reader 1")
    with session_scope(url) as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None and issue.message_template is not None
        planned = s.execute(
            select(Delivery.variant_id, func.count())
            .where(Delivery.issue_id == issue_id, Delivery.status == "pending")
            .group_by(Delivery.variant_id)
        ).all()
        total = copies = 0
        for variant_id, count in planned:
            frozen = issue.message_template
            if variant_id is not None:
                variant = s.get(IssueVariant, variant_id)
                assert variant is not None and variant.message_template is not None
                frozen = variant.message_template
            size = len(MessageTemplate.from_bytes(frozen, signer).personalise(reader))
            total, copies = total + size * count, copies + count
    return round(total / max(copies, 1))


def pool_pids(worker_pid: int) -> list[int]:
    """The Celery pool processes (children) of one `digest worker`."""
    try:
        text = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a live process, from the kernel (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


CLK_TCK = os.sysconf("SC_CLK_TCK")
Cpu = tuple[float, float]  # user, sys seconds


@dataclass(frozen=True)
class Reference:
    """One smtp-source run: messages per second, its CPU, smtp-sink's CPU meanwhile."""

    rate: float
    source: Cpu
    sink: Cpu


def proc_cpu(pid: int, *, reaped: bool = False) -> Cpu:
    """CPU seconds of a live process, all its threads; with `reaped`, plus its children's
    that have exited and been waited for (a pool process replaced mid-run)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rpartition(")")[2].split()  # fields 3 onwards: utime is 14, stime 15
    user, system = int(fields[11]), int(fields[12])
    if reaped:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


class CpuMeter:
    """CPU used by a changing set of processes between start() and stop(): a process seen
    only at the end counts from zero (it was started in between)."""

    def __init__(self, pids: Callable[[], dict[int, bool]]) -> None:
        self.pids = pids  # pid -> count its reaped children too
        self.before: dict[int, Cpu] = {}
        self.used: Cpu = (0.0, 0.0)

    def _now(self) -> dict[int, Cpu]:
        return {pid: proc_cpu(pid, reaped=reaped) for pid, reaped in self.pids().items()}

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> Cpu:
        user = system = 0.0
        for pid, (u, s) in self._now().items():
            u0, s0 = self.before.get(pid, (0.0, 0.0))
            user, system = user + u - u0, system + s - s0
        self.used = (user, system)
        return self.used


def backend_pids(url: str) -> dict[int, bool]:
    """PostgreSQL's server processes connected to the benchmark's database."""
    import psycopg

    dsn = ADMIN.replace("postgresql+psycopg://", "postgresql://")
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return {int(pid): False for (pid,) in rows}


def per_1000(cpu: Cpu, messages: int) -> dict[str, float]:
    scale = 1000 / max(messages, 1)
    user, system = cpu
    return {
        "total": round((user + system) * scale, 3),
        "user": round(user * scale, 3),
        "sys": round(system * scale, 3),
    }


def reference_rate(port: int, count: int, size: int, sessions: int, sink_pid: int) -> Reference:
    """smtp-source: same sink, same message size, same sessions, reused connections (-d).
    Returns its messages per second, its CPU seconds and smtp-sink's during the run."""
    sink = CpuMeter(lambda: {sink_pid: True})
    sink.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-d", "-s", str(sessions), "-l", str(size), "-m", str(count), "-M", "bench.local",
         "-f", "bounces@example.org", "-t", "reader@example.org", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    source = (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
    return Reference(count / seconds, source, sink.stop())


def added(a: Cpu, b: Cpu) -> Cpu:
    return a[0] + b[0], a[1] + b[1]


def start_profilers(pids: list[int], workdir: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on each pool process, sampling without pausing it, a line per thread's stack;
    only stacks that hold the GIL (Python at work, not a thread waiting in select or for
    PostgreSQL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--nonblocking",
                "--gil",
                "--threads",
                "--nolineno",
                "--format",
                "raw",
                "--output",
                str(workdir / f"pool-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]], workdir: Path, top: int = 30) -> None:
    """Stop py-spy (it writes on SIGINT) and sum the samples: DIR/top.txt."""
    for spy in profilers:
        spy.send_signal(signal.SIGINT)
    for spy in profilers:
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
    own: CounterT[str] = CounterT()
    inclusive: CounterT[str] = CounterT()
    threads: CounterT[str] = CounterT()
    total = 0
    for path in sorted(workdir.glob("pool-*.txt")):
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            own[frames[-1]] += count
            for frame in set(frames[1:]):  # frames[0] names the thread
                if "(digest/" in frame or "(workers/" in frame:
                    inclusive[frame] += count
            threads[frames[0].partition(": ")[2]] += count
    lines = [f"{total} samples at 200/s in {len(profilers)} pool processes"]
    lines += [f"  {name}: {n} ({100 * n / max(total, 1):.1f}%)" for name, n in threads.items()]
    for title, counts in (("own time", own), ("with callees (our functions)", inclusive)):
        lines.append(f"\ntop {top} by {title}:")
        lines += [
            f"{100 * n / max(total, 1):6.1f}%  {n:7d}  {frame}"
            for frame, n in counts.most_common(top)
        ]
    (workdir / "top.txt").write_text("\n".join(lines) + "\n")


def dkim_env(kind: str, workdir: str) -> dict[str, str]:
    """Settings that make every copy DKIM-signed with a fresh key of this kind."""
    if kind == "off":
        return {}
    path = Path(workdir) / "dkim.key"
    if kind == "rsa":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    else:
        import base64

        import nacl.signing

        path.write_bytes(base64.b64encode(bytes(nacl.signing.SigningKey.generate())))
    return {"DIGEST_DKIM_KEY_FILE": str(path), "DIGEST_DKIM_SELECTOR": "bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="`digest worker` processes")
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes per worker")
    parser.add_argument("--sessions", type=int, default=8, help="SMTP sessions per process")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20, help="news items in the digest")
    parser.add_argument(
        "--variants",
        type=int,
        default=0,
        help="topic sets per edition (0: one rendering for all, as before)",
    )
    parser.add_argument("--editions", type=int, default=3, help="with --variants: editions")
    parser.add_argument(
        "--approve-only",
        action="store_true",
        help="with --variants: stop after approval and planning (no workers, no SMTP)",
    )
    parser.add_argument(
        "--reference-count",
        type=int,
        default=0,
        help="smtp-source's messages (default: N, <= 200k)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the pool processes with py-spy; stacks and DIR/top.txt",
    )
    parser.add_argument(
        "--dkim",
        choices=["off", "rsa", "ed25519"],
        default="off",
        help="sign each copy with a DKIM key of this kind (2048-bit RSA or Ed25519)",
    )
    args = parser.parse_args()
    for tool in () if args.approve_only else (SINK, SOURCE, REDIS):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is needed (Debian packages postfix and redis-server)")

    os.environ["DIGEST_SECRET_KEY"] = "bench-secret"
    if args.approve_only:
        approve_only(args)
        return
    sink_port, redis_port = free_port(), free_port()
    procs = args.workers * args.concurrency
    with (
        tempfile.TemporaryDirectory() as workdir,
        scratch_database(f"digest_bench_send_{os.getpid()}") as url,
        running(sink_args(sink_port), sink_port, "smtp-sink") as sink,
        running(redis_args(redis_port, workdir), redis_port, "redis-server") as redis_server,
    ):
        broker = f"redis://127.0.0.1:{redis_port}/0"
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
            | {
                "DIGEST_DATABASE_URL": url,
                "DIGEST_BROKER_URL": broker,
                "DIGEST_SECRET_KEY": "bench-secret",
                "DIGEST_TRANSPORT": "smtp",
                "DIGEST_SMTP_HOST": "127.0.0.1",
                "DIGEST_SMTP_PORT": str(sink_port),
                "DIGEST_SMTP_CONNECTIONS": str(args.sessions),
                "DIGEST_BATCH_SIZE": str(args.batch_size),
                "DIGEST_SEND_FANOUT": str(procs),
            }
            | dkim_env(args.dkim, workdir)
        )
        os.environ.update(env)
        from digest.config import reset_settings

        reset_settings()
        approve_seconds, frozen = 0.0, 1
        if args.variants:
            issue_id, load_seconds, approve_seconds, plan_seconds, frozen = make_variant_issue(
                url, args.recipients, args.items, args.editions, args.variants
            )
        else:
            issue_id, load_seconds, plan_seconds = make_issue(url, args.recipients, args.items)
        size = message_size(url, issue_id)
        reference_count = args.reference_count or min(args.recipients, 200_000)
        reference_args = (sink_port, reference_count, size, procs * args.sessions, sink.pid)
        first = reference_rate(*reference_args)

        metric_ports = [free_port() for _ in range(args.workers)]
        workers = [
            subprocess.Popen(
                [
                    DIGEST,
                    "worker",
                    "--queues",
                    "send",
                    "--concurrency",
                    str(args.concurrency),
                    "--loglevel",
                    "WARNING",
                    "--metrics-port",
                    str(port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port in metric_ports
        ]
        try:
            from workers.app import app
            from workers.tasks import send_issue

            deadline = time.monotonic() + 60
            while len(app.control.ping(timeout=0.5) or []) < args.workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not come up")
            worker_cpu = CpuMeter(
                lambda: {pid: pid == w.pid for w in workers for pid in (w.pid, *pool_pids(w.pid))}
            )
            pool_cpu = CpuMeter(lambda: {p: False for w in workers for p in pool_pids(w.pid)})
            postgres_cpu = CpuMeter(lambda: backend_pids(url))
            redis_cpu = CpuMeter(lambda: {redis_server.pid: False})
            sink_cpu = CpuMeter(lambda: {sink.pid: True})
            meters = (worker_cpu, pool_cpu, postgres_cpu, redis_cpu, sink_cpu)
            profilers = (
                start_profilers([p for w in workers for p in pool_pids(w.pid)], args.profile)
                if args.profile
                else []
            )
            for meter in meters:
                meter.start()
            from digest.models import utcnow

            started, started_at = time.perf_counter(), utcnow()
            send_issue.delay(issue_id)
            status, progress = wait_sent(url, issue_id)
            seconds = time.perf_counter() - started
            timeline = send_timeline(url, issue_id, started_at, seconds)
            for meter in meters:
                meter.stop()
            if args.profile:
                stop_profilers(profilers, args.profile)
            peak_rss = max(vm_hwm_mb(p) for w in workers for p in pool_pids(w.pid))
            metrics = scrape(metric_ports)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    w.kill()
        last = reference_rate(*reference_args)
    rate = progress.sent / seconds
    reference = (first.rate + last.rate) / 2
    print(json.dumps({
        "recipients": args.recipients,
        "dkim": args.dkim,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(rate),
        "reference_msgs_per_s": round(reference),
        "ratio": round(rate / reference, 3),
        "reference_runs": [round(first.rate), round(last.rate)],
        "timeline": timeline,
        "cpu_per_1000": {
            "workers": per_1000(worker_cpu.used, progress.sent),
            "of_which_pool": per_1000(pool_cpu.used, progress.sent),
            "smtp_source": per_1000(added(first.source, last.source), 2 * reference_count),
            "postgres": per_1000(postgres_cpu.used, progress.sent),
            "redis": per_1000(redis_cpu.used, progress.sent),
            "smtp_sink_send": per_1000(sink_cpu.used, progress.sent),
            "smtp_sink_reference": per_1000(added(first.sink, last.sink), 2 * reference_count),
        },
        "load_average": os.getloadavg()[0],
        "peak_rss_mb": round(peak_rss, 1),
        "plan_seconds": round(plan_seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "approve_seconds": round(approve_seconds, 2),
        "variants_frozen": frozen,
        "editions": args.editions if args.variants else 1,
        "workers": args.workers,
        "processes": procs,
        "sessions": procs * args.sessions,
        "sessions_busy": sessions_busy(metrics, timeline),
        "batch_size": args.batch_size,
        "items": args.items,
        "message_bytes": size,
        "issue_status": status,
        "ledger": asdict(progress),
        "metrics": metrics,
    }))  # fmt: skip


def approve_only(args: argparse.Namespace) -> None:
    """Approval and planning of a list with variants, without workers or SMTP."""
    with scratch_database(f"digest_bench_approve_{os.getpid()}") as url:
        os.environ["DIGEST_DATABASE_URL"] = url
        from digest.config import reset_settings

        reset_settings()
        variants = args.variants
        if variants:
            _, load_seconds, approve_seconds, plan_seconds, frozen = make_variant_issue(
                url, args.recipients, args.items, args.editions, variants
            )
        else:  # the one-rendering baseline: planning only (approval is not timed there)
            _, load_seconds, plan_seconds = make_issue(url, args.recipients, args.items)
            approve_seconds, frozen = 0.0, 1
    print(json.dumps({
        "recipients": args.recipients,
        "editions": args.editions if variants else 1,
        "topic_sets": variants,
        "variants_frozen": frozen,
        "approve_seconds": round(approve_seconds, 2),
        "approve_cpu_seconds": round(sum(APPROVE_CPU), 2),
        "plan_seconds": round(plan_seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "items_per_edition": args.items,
        "load_average": os.getloadavg()[0],
    }))  # fmt: skip


def scrape(ports: list[int]) -> dict[str, float]:
    """The digest_* counters of every worker's /metrics, summed (histogram buckets left out);
    the gauges, which every worker reads from the same stores, once."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for port in ports:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not s.name.startswith("digest_") or s.name.endswith(("_bucket", "_created")):
                    continue
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                key = f"{s.name}{{{labels}}}" if labels else s.name
                if family.type == "gauge":  # read from the shared stores: the same for all
                    totals[key] = max(totals.get(key, 0.0), s.value)
                else:
                    totals[key] = round(totals.get(key, 0.0) + s.value, 3)
    return totals


def sessions_busy(metrics: dict[str, float], timeline: dict[str, float]) -> float | None:
    """Sessions waiting on a reply, on average over the wire's seconds: the workers' summed
    round trips (digest_smtp_round_trip_seconds) over that time. Below "sessions", the rest is
    time a session had nothing on the wire: batch boundaries, or its process off the CPU."""
    waited = sum(
        v for k, v in metrics.items() if k.startswith("digest_smtp_round_trip_seconds_sum")
    )
    wire = timeline.get("wire")
    return round(waited / wire, 2) if wire else None


def send_timeline(
    url: str, issue_id: int, started_at: datetime, seconds: float
) -> dict[str, float]:
    """Seconds until the first copy was recorded sent, from the first to the last, and from
    the last until the issue was seen sent (sent_at is stamped when a round is flushed)."""
    from sqlalchemy import func, select

    from digest.db import session_scope
    from digest.models import Delivery

    with session_scope(url) as s:
        first, last = s.execute(
            select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(
                Delivery.issue_id == issue_id
            )
        ).one()
    if first is None or last is None:
        return {}
    to_first = (first - started_at).total_seconds()
    to_last = (last - started_at).total_seconds()
    return {
        "to_first_sent": round(to_first, 2),
        "wire": round(to_last - to_first, 2),
        "after_last_sent": round(seconds - to_last, 2),
    }


def wait_sent(url: str, issue_id: int, timeout: float = 3600) -> tuple[str, Any]:
    from sqlalchemy import select

    from digest.db import session_scope
    from digest.delivery.ledger import issue_progress
    from digest.models import Issue

    deadline = time.monotonic() + timeout
    while True:
        with session_scope(url) as s:
            status = s.scalar(select(Issue.status).where(Issue.id == issue_id)) or ""
            if status in ("sent", "paused", "cancelled") or time.monotonic() > deadline:
                return status, issue_progress(s, issue_id)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
