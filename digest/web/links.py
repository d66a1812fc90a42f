"""Turn a link's token into the row it names, or the HTTP error a subscriber should see."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.keys import LinkKeys
from digest.models import Issue, IssueVariant, Subscription
from digest.tokens import InvalidToken, Purpose, read_token

# Our tokens are a few dozen characters; anything far longer is not one of ours.
MAX_TOKEN_LENGTH = 256


class BadLink(HTTPException):
    """A forged, truncated or wrong-purpose token: 400 with a page saying so."""

    def __init__(self) -> None:
        super().__init__(status_code=400, detail="bad-link")


class GoneLink(HTTPException):
    """A valid token for a row that no longer exists."""

    def __init__(self) -> None:
        super().__init__(status_code=404, detail="gone")


def token_id(purpose: Purpose, token: str, keys: LinkKeys) -> int:
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadLink()
    try:
        return read_token(purpose, token, keys)
    except InvalidToken as exc:
        raise BadLink() from exc


def subscription_for(
    session: Session, purpose: Purpose, token: str, keys: LinkKeys
) -> Subscription:
    subscription = session.get(Subscription, token_id(purpose, token, keys))
    if subscription is None:
        raise GoneLink()
    return subscription


def issue_for(session: Session, token: str, keys: LinkKeys) -> Issue:
    issue_id = token_id("view", token, keys)
    issue = session.get(Issue, issue_id) if issue_id <= MAX_INT else None
    if issue is None or issue.html is None:
        raise GoneLink()
    return issue


def view_target(session: Session, token: str, keys: LinkKeys) -> tuple[Issue, IssueVariant | None]:
    """What a /v/ link shows: an issue ("view" token), or one of its variants ("variant"
    token, what a copy rendered for an edition and topic set carries)."""
    try:
        return issue_for(session, token, keys), None
    except BadLink:
        variant_id = token_id("variant", token, keys)
    variant = session.get(IssueVariant, variant_id) if variant_id <= MAX_INT else None
    if variant is None or variant.html is None:
        raise GoneLink()
    issue = session.get(Issue, variant.issue_id)
    if issue is None or issue.html is None:
        raise GoneLink()
    return issue, variant


def mask_email(email: str) -> str:
    """j•••@example.org: enough for the owner to recognise, little for whoever holds the link."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"
