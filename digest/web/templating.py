"""Jinja2 for the web pages in templates/web/: autoescaped, strict about undefined names."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

# templates/ sits beside digest/ at the top of the project.
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "web"
STATIC_DIR = TEMPLATES_DIR / "static"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def root_path(request: Request) -> str:
    """The prefix the app is mounted under (behind a proxy), for links between our pages."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    settings = request.app.state.settings
    # The page's context wins: a list's own sender name replaces the service's.
    values = {"root": root_path(request), "brand": settings.from_name, **context}
    page = environment().get_template(template).render(values)
    return HTMLResponse(page, status_code=status_code)
