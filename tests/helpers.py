"""Helpers the integration tests share: run the real `digest` command, read an outbox."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

DIGEST = str(Path(sys.executable).with_name("digest"))


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without its DIGEST_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(extra or {})
    return env


def run_digest(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DIGEST, *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    return [parse(p.read_bytes()) for p in sorted((outbox / "new").iterdir())]


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The text and html bodies of a multipart/alternative message (asserts the structure)."""
    assert msg.get_content_type() == "multipart/alternative"
    kids = list(msg.iter_parts())
    assert [k.get_content_type() for k in kids] == ["text/plain", "text/html"]
    return str(kids[0].get_content()), str(kids[1].get_content())
