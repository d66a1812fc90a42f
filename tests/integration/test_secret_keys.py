"""Outside development mode nothing sends, serves or signs with a missing or published key;
the demo makes its own key once and keeps it; a public URL that is not https is warned about."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from digest.cli import main
from digest.config import DEV_SECRET, reset_settings
from digest.keys import InsecureKey
from digest.web.app import create_app
from tests.helpers import outbox_messages, read, run_digest

UNSUB = re.compile(r"/u/([A-Za-z0-9_.-]+)")
PUBLISHED = (DEV_SECRET, "change-me-in-production")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The `digest` command in this process (its settings: this test's environment)."""
    reset_settings()
    code = main(list(args))
    return code, capsys.readouterr().err


def one_line_error(code: int, stderr: str, *words: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    return sqlite_url


COMMANDS = [
    ["serve", "--port", "1"],
    ["issues", "send", "1"],
    ["issues", "resume", "1"],
    ["issues", "test-send", "1", "--to", "ed@example.org"],
]


def test_sending_and_serving_refuse_a_missing_or_published_key(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in COMMANDS:
        monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
        code, stderr = run_cli(capsys, *command)
        one_line_error(code, stderr, "DIGEST_SECRET_KEY is not set", "DIGEST_DEV_MODE=1")
        for key in PUBLISHED:
            monkeypatch.setenv("DIGEST_SECRET_KEY", key)
            one_line_error(*run_cli(capsys, *command), "published example key")
        # Kept among older keys, a published key is refused all the same.
        monkeypatch.delenv("DIGEST_SECRET_KEY")
        monkeypatch.setenv("DIGEST_SECRET_KEYS", f"{DEV_SECRET} a-fresh-random-key")
        one_line_error(*run_cli(capsys, *command), "published example key")
        monkeypatch.delenv("DIGEST_SECRET_KEYS")


def test_a_worker_refuses_a_published_key(
    store: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIGEST_BROKER_URL", redis_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", DEV_SECRET)
    one_line_error(*run_cli(capsys, "worker"), "published")


def test_development_mode_and_the_https_warning(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    monkeypatch.setenv("DIGEST_DEV_MODE", "1")
    # Past the key check: the issue is what is missing. No https warning in dev mode.
    one_line_error(*run_cli(capsys, "issues", "send", "9"), "no issue 9")

    monkeypatch.delenv("DIGEST_DEV_MODE")
    monkeypatch.setenv("DIGEST_SECRET_KEY", "a-good-random-key")
    code, stderr = run_cli(capsys, "issues", "send", "9")
    assert code == 2
    warning, error = stderr.strip().splitlines()
    assert warning.startswith("warning: DIGEST_PUBLIC_URL (http://127.0.0.1:8000) is not https")
    assert "RFC 8058" in warning and error.startswith("error: no issue 9")

    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org")
    one_line_error(*run_cli(capsys, "issues", "send", "9"), "no issue 9")


def test_a_demo_with_a_published_key_makes_nothing(tmp_path: Path) -> None:
    result = run_digest("demo", env={"DIGEST_SECRET_KEY": DEV_SECRET}, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
    assert "published" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "digest.db").exists() and not (tmp_path / "outbox").exists()


def test_the_demo_makes_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = run_digest("demo", "--subscribers", "3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kept = tmp_path / "digest.db.key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    key = kept.read_text().strip()
    assert len(key) >= 40 and key != DEV_SECRET

    (tmp_path / "outbox" / "new").mkdir(exist_ok=True)
    for msg in outbox_messages(tmp_path / "outbox"):
        token = UNSUB.search(str(msg["List-Unsubscribe"]))
        assert token is not None
        assert read("unsubscribe", token.group(1), key) > 0

    second = run_digest("demo", "--subscribers", "3", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert kept.read_text().strip() == key  # the same key: links already sent still work


def test_the_app_refuses_to_start_with_a_missing_or_published_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    reset_settings()
    with pytest.raises(InsecureKey, match="not set"):
        create_app()
    monkeypatch.setenv("DIGEST_SECRET_KEY", DEV_SECRET)
    reset_settings()
    with pytest.raises(InsecureKey, match="published"):
        create_app()
    monkeypatch.setenv("DIGEST_DEV_MODE", "1")
    reset_settings()
    create_app()  # a development machine may
