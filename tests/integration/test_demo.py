"""`digest demo` on a fresh folder: the whole job on embedded defaults, then a quiet rerun."""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import outbox_messages, parts, read, run_digest

UNSUB = re.compile(r"/u/([A-Za-z0-9_.-]+)")


def test_demo_delivers_every_copy_then_sends_nothing_new(tmp_path: Path) -> None:
    env = {"DIGEST_SECRET_KEY": "demo-test"}
    first = run_digest("demo", "--subscribers", "300", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "300 recipients" in first.stdout and "300 sent" in first.stdout
    assert (tmp_path / "digest.db").exists()
    previews = list((tmp_path / "preview").glob("issue-*.html"))
    assert previews and "Jeun" in previews[0].read_text()

    messages = outbox_messages(tmp_path / "outbox")
    assert len(messages) == 300
    ids, tokens, recipients = set(), set(), set()
    for msg in messages:
        text, html = parts(msg)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        raw_lu = str(msg["List-Unsubscribe"])
        assert "<http" in raw_lu and "<mailto:" in raw_lu
        token = UNSUB.search(raw_lu)
        assert token is not None
        read("unsubscribe", token.group(1), "demo-test")
        assert token.group(1) in html and token.group(1) in text
        ids.add(msg["Message-ID"])
        tokens.add(token.group(1))
        recipients.add(str(msg["To"]))
        assert "[[digest" not in html and "[[digest" not in text
    assert len(ids) == len(tokens) == len(recipients) == 300

    second = run_digest("demo", "--subscribers", "300", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing new" in second.stdout
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 300


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run_digest("init", cwd=tmp_path)
    cases = [
        ["issues", "compose", "no-such-list"],
        ["issues", "show", "999"],
        ["subscribers", "import", "missing.csv", "--list", "x"],
        ["lists", "create", "Bad Slug", "--name", "x"],
        ["issues", "preview", "1", "--format", "pdf"],
        # Usage errors come from typer's own copy of click in newer typers, not from click.
        ["issues", "status", "1", "--json"],
        ["issues", "status"],
        ["issues", "status", "abc"],
        ["no-such-command"],
        ["demo", "--subscribers", "0"],
    ]
    # Each is a process of its own (seconds to start on a busy machine): run them side by side.
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: run_digest(*args, cwd=tmp_path), cases))
    for args, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    bare = run_digest("lists", cwd=tmp_path)  # a group without a command: its help, no error
    assert bare.returncode == 2 and "Usage: digest lists" in bare.stdout
    assert "error" not in bare.stderr and "Traceback" not in bare.stderr


def test_preview_reads_like_a_real_copy(tmp_path: Path) -> None:
    assert run_digest("demo", "--subscribers", "3", cwd=tmp_path).returncode == 0
    for fmt in ("html", "text"):
        out = tmp_path / f"p.{fmt}"
        result = run_digest(
            "issues", "preview", "1", "--format", fmt, "--out", str(out), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        body = out.read_text()
        assert "[[digest" not in body
        assert "Hello Alex Reader," in body
        # The seed lists two items of 31 January 2024; the issue keeps the page's order.
        assert body.index("ILO participates") < body.index("ILO joins")
