"""A fresh clone installs exactly what uv.lock pins, with the package index as its only source,
and `make` notices a pyproject.toml that the lock no longer matches."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _clone(dest: Path) -> Path:
    """What a fresh clone of this checkout holds: its tracked and not-ignored files, nothing
    installed (no .venv, no .uv)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def _make(clone: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "VIRTUAL_ENV"))}
    return subprocess.run(
        ["make", *targets],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _installed(clone: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            str(clone / ".venv/bin/python"),
            "-c",
            "import importlib.metadata as m\n"
            "for d in m.distributions(): print(d.metadata['Name'], d.version)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in (line.split() for line in out.splitlines())
    }


def test_fresh_clone_installs_the_lock_and_refuses_a_stale_one(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "clone")
    locked = {
        p["name"]: p["version"]
        for p in tomllib.loads((clone / "uv.lock").read_text())["package"]
        if "version" in p
    }

    first = _make(clone, ".venv/.installed")
    assert first.returncode == 0, first.stdout + first.stderr
    installed = _installed(clone)
    # Everything installed is the locked version; the project, its runtime and dev tools are in.
    assert {name: installed[name] for name in installed} == {
        name: locked[name] for name in installed
    }
    for name in ("digest", "typer", "fastapi", "sqlalchemy", "prometheus-client", "pytest"):
        assert name in installed, name
    # The CLI that typer 0.29 once broke runs from the lock.
    cli = subprocess.run(
        [str(clone / ".venv/bin/digest"), "--help"], capture_output=True, text=True, check=False
    )
    assert cli.returncode == 0 and "demo" in cli.stdout, cli.stderr

    # A dependency added to pyproject.toml without `make lock`: the install stops and says so.
    pyproject = clone / "pyproject.toml"
    text = pyproject.read_text()
    added = text.replace("dependencies = [\n", 'dependencies = [\n  "tomli-w>=1.0",\n', 1)
    pyproject.write_text(added)
    stale = _make(clone, ".venv/.installed")
    assert stale.returncode != 0
    assert "run 'make lock'" in stale.stderr
    assert "tomli-w" not in _installed(clone)

    # `make lock` adds it (keeping every other pin) and the next make installs it.
    relock = _make(clone, "lock")
    assert relock.returncode == 0, relock.stdout + relock.stderr
    relocked = {
        p["name"]: p["version"]
        for p in tomllib.loads((clone / "uv.lock").read_text())["package"]
        if "version" in p
    }
    assert "tomli-w" in relocked
    assert {n: v for n, v in relocked.items() if n in locked} == locked
    again = _make(clone, ".venv/.installed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _installed(clone)["tomli-w"] == relocked["tomli-w"]
