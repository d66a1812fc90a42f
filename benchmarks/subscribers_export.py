"""The admin's subscriber export on PostgreSQL: streamed, with flat memory.

    .venv/bin/python benchmarks/subscribers_export.py [--subscribers 1000000] [--format csv]

Loads confirmed subscribers of one list into a scratch database, starts the app with uvicorn
in a child process, and downloads GET /api/v1/exports/subscribers?list=... with an admin's
API token, twice: a tenth of the rows (a status filter matching 10 %), then all of them. The
server's peak resident memory (VmHWM) is read after each, so a response held in memory would
show as growth with the row count. Prints one JSON line: rows, bytes, seconds, rows per
second and the server's peak memory after each download, and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg

from benchmarks.common import load_subscribers, scratch_database
from digest.accounts.api_tokens import issue_token
from digest.accounts.users import add_user
from digest.db import session_scope
from digest.models import MailingList, Role

UVICORN = str(Path(sys.executable).with_name("uvicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_kib(pid: int, field: str = "VmHWM") -> int:
    """The process's peak (VmHWM) or current (VmRSS) resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def download(base: str, token: str, params: dict[str, str]) -> tuple[int, int, float]:
    """(rows, bytes, seconds) of one streamed download."""
    started = time.perf_counter()
    size = lines = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream(
        "GET", f"{base}/api/v1/exports/subscribers", params=params, headers=headers, timeout=600
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines, size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    args = parser.parse_args()
    with scratch_database("digest_bench_export") as url:
        with session_scope(url) as session:
            lst = MailingList(slug="news", name="News")
            session.add(lst)
            session.flush()
            list_id = lst.id
            user = add_user(session, "bench@example.org", "bench password 1", role=Role.ADMIN)
            token = issue_token(session, user).token
        load_seconds = load_subscribers(url, list_id, args.subscribers)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            # A tenth pending: the small download's filter.
            conn.execute("UPDATE subscriptions SET status = 'pending' WHERE subscriber_id % 10 = 0")
            conn.commit()
        port = free_port()
        env = {**os.environ, "DIGEST_DATABASE_URL": url, "DIGEST_DEV_MODE": "1"}
        server = subprocess.Popen(
            [
                UVICORN,
                "--factory",
                "digest.web.app:create_app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            idle = peak_kib(server.pid)
            common = {"list": "news", "format": args.format}
            small = download(base, token, {**common, "status": "pending"})
            after_small = peak_kib(server.pid)
            full = download(base, token, common)
            after_full = peak_kib(server.pid)
            rss_after = peak_kib(server.pid, "VmRSS")
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "format": args.format,
                "small": {"lines": small[0], "bytes": small[1], "seconds": round(small[2], 2)},
                "full": {
                    "lines": full[0],
                    "bytes": full[1],
                    "seconds": round(full[2], 2),
                    "rows_per_second": round(full[0] / full[2]),
                },
                "server_peak_kib": {
                    "idle": idle,
                    "after_small": after_small,
                    "after_full": after_full,
                },
                "server_rss_kib_after": rss_after,
                "load_seconds": round(load_seconds, 1),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
