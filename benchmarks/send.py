"""Send one personalised issue to N recipients through K worker processes into smtp-sink.

PostgreSQL store, Postfix's smtp-sink on 127.0.0.1 as the receiver (it is not the bottleneck,
unlike aiosmtpd), and smtp-source against the same sink with messages of the same size over
the same number of sessions as the reference. Workers are processes running the library's
send path (`send_issue_inline`: claim with SKIP LOCKED, pipelined SMTP, grouped ledger
writes), the same code a Celery send task runs. Prints one JSON line:
{"recipients", "seconds", "msgs_per_s", "reference_msgs_per_s", "ratio", "peak_rss_mb",
 "plan_seconds", ...}

    .venv/bin/python benchmarks/send.py --recipients 100000 --workers 2 --sessions 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADMIN_URL = os.environ.get(
    "DIGEST_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def issue_bodies() -> tuple[str, str]:
    """A realistic 20-item digest, about 40 KB of HTML, with every placeholder."""
    from digest import placeholders as P

    items_html, items_text = [], []
    for i in range(20):
        summary = (
            f"Researchers of department {i} published results on topic {i}, with quotes, "
            "figures and a link to the full story on the university's news pages. " * 6
        )
        items_html.append(
            '<tr><td style="padding:16px 24px;font-family:Arial,sans-serif;font-size:15px;'
            'line-height:22px;color:#222222;">'
            f'<a href="https://news.example.org/2024/02/item-{i}?utm_source=digest" '
            'style="color:#0b5394;font-weight:bold;font-size:18px;text-decoration:none;">'
            f"News item number {i}: a headline of reasonable length</a>"
            f'<div style="color:#666666;font-size:13px;">21 February 2024</div>'
            f"<p>{summary}</p></td></tr>\n"
        )
        items_text.append(
            f"News item number {i}\nhttps://news.example.org/2024/02/item-{i}\n{summary}\n"
        )
    html = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Digest</title></head>'
        f'<body style="margin:0;background:#f4f4f4;"><a href="{P.VIEW_ONLINE_URL}">View online</a>'
        f'<table role="presentation" width="600" align="center"><tr><td>Hello {P.NAME},</td></tr>\n'
        + "".join(items_html)
        + f'<tr><td><a href="{P.PREFERENCES_URL}">Preferences</a> | '
        f'<a href="{P.UNSUBSCRIBE_URL}">Unsubscribe</a> ({P.EMAIL})</td></tr></table></body></html>'
    )
    text_body = (
        f"Hello {P.NAME},\n\n" + "\n".join(items_text)
        + f"\nView online: {P.VIEW_ONLINE_URL}\nUnsubscribe: {P.UNSUBSCRIBE_URL}\n"
    )  # fmt: skip
    return html, text_body


def setup_store(url: str, recipients: int) -> tuple[int, float]:
    """Schema, a list with `recipients` confirmed subscribers, a prepared issue; then plan."""
    from digest.db import Base, get_engine, session_factory
    from digest.delivery.ledger import plan_deliveries
    from digest.delivery.prepare import prepare_issue_message
    from digest.models import Issue, MailingList

    engine = get_engine(url)
    Base.metadata.create_all(engine)
    sf = session_factory(url)
    with sf.begin() as s:
        mailing_list = MailingList(slug="bench", name="Bench News")
        s.add(mailing_list)
        s.flush()
        s.execute(
            text(
                "INSERT INTO subscribers (email, name, attributes, created_at) "
                "SELECT 'reader' || g || '@example.com', 'Reader ' || g, '{}', now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": recipients},
        )
        s.execute(
            text(
                "INSERT INTO subscriptions"
                " (list_id, subscriber_id, status, preferences, created_at) "
                "SELECT :list_id, id, 'confirmed', '{}', now() FROM subscribers"
            ),
            {"list_id": mailing_list.id},
        )
        html, text_body = issue_bodies()
        issue = Issue(list_id=mailing_list.id, number=1, subject="Bench News: February 2024",
                      status="sending", html=html, text=text_body)  # fmt: skip
        s.add(issue)
        s.flush()
        prepare_issue_message(s, issue.id)
        issue_id = issue.id
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    started = time.perf_counter()
    with sf.begin() as s:
        planned = plan_deliveries(s, issue_id)
    plan_seconds = time.perf_counter() - started
    assert planned == recipients, (planned, recipients)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE deliveries"))
        conn.commit()
    return issue_id, plan_seconds


def worker(url: str, issue_id: int, port: int, sessions: int, out: Any) -> None:
    os.environ["DIGEST_DATABASE_URL"] = url
    from digest.db import session_factory
    from digest.delivery.send import send_issue_inline
    from digest.delivery.smtp import SmtpTransport
    from digest.delivery.smtp_client import SmtpConfig

    transport = SmtpTransport(SmtpConfig(port=port, local_hostname="bench.local"), sessions)
    try:
        totals = send_issue_inline(session_factory(url), issue_id, transport)
    finally:
        transport.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(
        {"sent": totals.sent, "retried": totals.retried, "failed": totals.failed, "rss_mb": rss_mb}
    )


def start_sink(port: int) -> subprocess.Popen[bytes]:
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([SINK, *user, f"127.0.0.1:{port}", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("smtp-sink did not start")


def reference_rate(port: int, count: int, size: int, sessions: int) -> float | None:
    """smtp-source: same sink, same message size, same sessions, reused connections."""
    if not Path(SOURCE).exists():
        return None
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-d", "-s", str(sessions), "-l", str(size), "-m", str(count), "-M", "bench.local",
         "-f", "bounces@example.org", "-t", "reader@example.com", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=8, help="SMTP sessions per worker")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    if not Path(SINK).exists():
        raise SystemExit("smtp-sink (Debian package postfix) is needed for this benchmark")

    os.environ.setdefault("DIGEST_SECRET_KEY", "bench-secret")
    from digest.db import dispose_engines, get_engine

    db = f"digest_bench_{os.getpid()}"
    with get_engine(ADMIN_URL).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    os.environ["DIGEST_DATABASE_URL"] = url
    port = free_port()
    sink = start_sink(port)
    try:
        issue_id, plan_seconds = setup_store(url, args.recipients)
        from digest.db import session_factory
        from digest.delivery.message import MessageTemplate
        from digest.delivery.recipient import Recipient
        from digest.models import Issue

        with session_factory(url)() as s:
            issue = s.get(Issue, issue_id)
            assert issue is not None and issue.message_template is not None
            template = MessageTemplate.from_bytes(issue.message_template)
        size = len(template.personalise(Recipient(1, 1, "reader1@example.com", "Reader 1")))
        personalise_us = timed_personalise(template)
        dispose_engines()

        sessions = args.workers * args.sessions
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(url, issue_id, port, args.sessions, out))
                 for _ in range(args.workers)]  # fmt: skip
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        seconds = time.perf_counter() - started
        sent = sum(r["sent"] for r in results)

        from digest.delivery.ledger import issue_progress

        with session_factory(url)() as s:
            progress = issue_progress(s, issue_id)
        reference = reference_rate(port, min(args.recipients, 50_000), size, sessions)
        rate = sent / seconds
        print(json.dumps({
            "recipients": args.recipients,
            "seconds": round(seconds, 2),
            "msgs_per_s": round(rate),
            "reference_msgs_per_s": round(reference) if reference else None,
            "ratio": round(rate / reference, 3) if reference else None,
            "peak_rss_mb": round(max(r["rss_mb"] for r in results), 1),
            "plan_seconds": round(plan_seconds, 2),
            "workers": args.workers,
            "sessions": sessions,
            "message_bytes": size,
            "personalise_us": round(personalise_us, 1),
            "ledger": progress,
        }))  # fmt: skip
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        dispose_engines()
        if not args.keep:
            with (
                get_engine(ADMIN_URL)
                .connect()
                .execution_options(isolation_level="AUTOCOMMIT") as conn
            ):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            dispose_engines()


def timed_personalise(template: Any, n: int = 20_000) -> float:
    """Microseconds per personalised copy (tokens, encoding, join), in this process."""
    from digest.delivery.recipient import Recipient

    recipients = [Recipient(i, i, f"reader{i}@example.com", f"Reader {i}") for i in range(n)]
    started = time.perf_counter()
    for r in recipients:
        template.personalise(r)
    return (time.perf_counter() - started) / n * 1e6


if __name__ == "__main__":
    main()
