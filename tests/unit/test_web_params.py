"""Every integer a route takes, in its path, query, form or JSON body, is bounded above and
below, so a number past 64 bits (or a negative id) is a 4xx before any query sees it."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

import annotated_types
from fastapi.routing import APIRoute
from pydantic import BaseModel

from digest.db import MAX_BIGINT
from digest.web.app import create_app


def _ints_in(annotation: Any) -> bool:
    if annotation is int:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_ints_in(a) for a in get_args(annotation))
    return False


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


def _bounded(metadata: list[Any]) -> bool:
    upper = [m.le for m in metadata if isinstance(m, annotated_types.Le)]
    upper += [m.lt for m in metadata if isinstance(m, annotated_types.Lt)]
    lower = [m for m in metadata if isinstance(m, annotated_types.Ge | annotated_types.Gt)]
    return bool(lower) and bool(upper) and max(upper) <= MAX_BIGINT


def _params(dependant: Any) -> list[Any]:
    """The request parameters of a route's dependant and of every dependency under it."""
    own = [
        *dependant.path_params,
        *dependant.query_params,
        *dependant.header_params,
        *dependant.cookie_params,
        *dependant.body_params,
    ]
    return own + [p for sub in dependant.dependencies for p in _params(sub)]


def unbounded_ints() -> list[str]:
    app = create_app()
    found = []
    for route in app.state.routes:
        if not isinstance(route, APIRoute):
            continue
        for param in _params(route.dependant):
            info = param.field_info
            if _ints_in(info.annotation) and not _bounded(info.metadata):
                found.append(f"{route.path} {param.name}")
            for model in _models_in(info.annotation):
                for name, field in model.model_fields.items():
                    if _ints_in(field.annotation) and not _bounded(field.metadata):
                        found.append(f"{route.path} {model.__name__}.{name}")
    return found


def test_every_integer_parameter_is_bounded() -> None:
    assert unbounded_ints() == []


def test_the_walk_finds_the_routes_integers() -> None:
    # The check above is only as good as its walk: it must see the ids it is meant to bound.
    app = create_app()
    seen = set()
    for route in app.state.routes:
        if isinstance(route, APIRoute):
            seen |= {p.name for p in _params(route.dependant)}
    assert {"issue_id", "item_id", "offset", "limit", "position", "move", "n"} <= seen
