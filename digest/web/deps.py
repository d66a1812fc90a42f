"""Typed request dependencies: one session per request, committed before the response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.keys import LinkKeys


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def link_keys(request: Request) -> LinkKeys:
    """The keys the app was made with (its settings', checked once at start)."""
    keys: LinkKeys = request.app.state.link_keys
    return keys


def mark_failed(request: Request) -> None:
    """The endpoint answered an error itself: roll the request's session back, not commit."""
    request.state.rolled_back = True


def _session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
        if getattr(request.state, "rolled_back", False):
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit happens before the response leaves, so a page never says
# "unsubscribed" for a change that failed to commit.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(app_settings)]
LinkKeysDep = Annotated[LinkKeys, Depends(link_keys)]
