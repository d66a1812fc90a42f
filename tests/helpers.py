"""Helpers the integration tests share: run the real `digest` command, read an outbox."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from digest.config import get_settings
from digest.keys import LinkKeys, checked, signing_keys
from digest.tokens import Purpose, Signer, make_token, read_token

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


# The tests' signing key (conftest sets DIGEST_SECRET_KEY to it for every test).
TEST_KEY = "test-secret"


def link_keys(*keys: str) -> LinkKeys:
    """Checked keys to sign or read links with in a test: the tests' key by default."""
    return checked(keys or (TEST_KEY,), dev_mode=False)


def configured_keys() -> LinkKeys:
    """The keys the current environment's settings name (what a command would sign with)."""
    return signing_keys(get_settings())


def token(purpose: Purpose, row_id: int, *keys: str) -> str:
    """A link token as the app signs it (with the tests' key unless others are given)."""
    return make_token(purpose, row_id, link_keys(*keys))


def read(purpose: Purpose, value: str, *keys: str) -> int:
    return read_token(purpose, value, link_keys(*keys))


def signer(*keys: str) -> Signer:
    return Signer(link_keys(*keys))
