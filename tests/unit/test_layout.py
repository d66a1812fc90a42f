"""The code base's shape (DESIGN.md): dependency rules, settings passed in, edges doing I/O only.

Read from the source itself, so a change that breaks a rule fails here with the place named.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "digest"
# The edges: they parse input, check the caller, shape the answer. Alembic's env.py is the
# entry point of the `alembic` command, an edge of its own.
EDGES = (LIBRARY / "cli", LIBRARY / "web", ROOT / "workers")
ENTRY_POINTS = {
    LIBRARY / "config.py",  # where get_settings lives
    LIBRARY / "web" / "app.py",  # the app factory: `digest serve` calls it with no settings
    LIBRARY / "migrations" / "env.py",
}


def modules(*roots: Path) -> Iterator[tuple[Path, ast.Module]]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(r) for r in roots)


def test_import_contracts_hold() -> None:
    """No import cycles (between packages, or between the modules of one); the library never
    imports an edge, Celery, FastAPI or the tests; the flow's packages depend downwards. The
    contracts are pyproject.toml's [tool.importlinter]."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_settings_are_read_from_the_environment_only_at_the_edges() -> None:
    """Services take the settings their caller holds: a request signs links with its app's
    keys, a worker with its own, whatever the process's environment says."""
    found = [
        where(path, node)
        for path, tree in modules(LIBRARY)
        if path not in ENTRY_POINTS and not under(path, EDGES)
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "get_settings")
        or (isinstance(node, ast.alias) and node.name == "get_settings")
        or (isinstance(node, ast.Attribute) and node.attr == "get_settings")
    ]
    assert found == [], f"get_settings() read in the library: {found}"


def test_the_web_app_reads_the_environment_only_in_its_factory() -> None:
    found = [
        where(path, node)
        for path, tree in modules(LIBRARY / "web")
        if path not in ENTRY_POINTS
        for node in ast.walk(tree)
        if isinstance(node, ast.Name | ast.alias)
        and getattr(node, "id", getattr(node, "name", "")) == "get_settings"
    ]
    assert found == [], f"pages read the global settings instead of their app's: {found}"


SESSION_QUERIES = {"execute", "scalar", "scalars", "query"}
# What an edge may take from SQLAlchemy: the Session type to pass along, and its errors.
EDGE_SQLALCHEMY = ("sqlalchemy.orm", "sqlalchemy.exc")


def test_edges_build_no_queries() -> None:
    """Listings and rules are one function each in the library: the CLI, the web pages, the
    API and the workers call them and never write a query of their own."""
    found: list[str] = []
    for path, tree in modules(*EDGES):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                if not (node.module or "").startswith(EDGE_SQLALCHEMY):
                    found.append(f"{where(path, node)} imports from {node.module}")
            elif isinstance(node, ast.Import) and any(
                a.name.startswith("sqlalchemy") and not a.name.startswith(EDGE_SQLALCHEMY)
                for a in node.names
            ):
                found.append(f"{where(path, node)} imports sqlalchemy")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SESSION_QUERIES
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("session", "s")
            ):
                found.append(f"{where(path, node)} runs session.{node.func.attr}()")
    assert found == [], "\n".join(found)


def test_look_alike_modules_are_gone() -> None:
    """A module's name says what it holds: `issues` (the stored issue: compose, freeze,
    preview, build its view) shares no module name with `render` (plain views to HTML), and
    the render fixture lives with the tests."""
    issues = {p.stem for p in (LIBRARY / "issues").glob("*.py")} - {"__init__"}
    render = {p.stem for p in (LIBRARY / "render").glob("*.py")} - {"__init__"}
    assert issues & render == set()
    assert not (LIBRARY / "render" / "sample.py").exists()
    assert not (LIBRARY / "sources" / "normalise.py").exists()
