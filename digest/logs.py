"""Log lines: plain text by default, one JSON object per line with DIGEST_LOG_FORMAT=json.

Every JSON line carries `issue_id` and `delivery_id` (null when the line is about neither):
the code that works on an issue binds its id with `log_context`, and a line about one
delivery passes it as `extra={"delivery_id": ...}`. The standard `logging` calls stay as
they are; structlog only formats what they emit (and what Celery and uvicorn emit).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

IDS = ("issue_id", "delivery_id")
_EXTRA = (*IDS, "source_id", "list_id")


@contextmanager
def log_context(**ids: int | str | None) -> Iterator[None]:
    """Lines logged inside (in this thread or task) carry these ids."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield


def _ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in IDS:
        event.setdefault(key, None)
    return event


def json_formatter() -> logging.Formatter:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(allow=_EXTRA),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _ids,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure_logging(log_format: str, level: int | str = logging.INFO) -> None:
    """Send every logger's lines to stderr, as JSON or as text."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    if log_format == "json":
        # uvicorn's and Celery's loggers keep handlers of their own: route them to ours.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True
