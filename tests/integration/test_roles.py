"""Every route of the editor and the API declares the least role it needs, and the role just
below it is refused (403), whoever asks: a table over the app's own routes, so a route added
without a role, or with a check written in its handler only, fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from digest.config import reset_settings
from digest.db import session_factory
from digest.models import AuditEntry, Issue, Role, User
from digest.web.app import create_app
from digest.web.auth import RoleGuard
from tests.accounts import bearer, grant, grant_all, signed_in
from tests.integration.test_editor_api import Seeded, seed_issue

GUARDED = ("/editor", "/api")
PUBLIC = {  # under /editor, reachable before signing in
    "/editor/assets/editor.css",
    "/editor/signin",
    "/editor/signout",
    "/editor/setup",
}


def guards(route: APIRoute) -> set[RoleGuard]:
    found: set[RoleGuard] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, RoleGuard):
            found.add(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def routes() -> list[tuple[str, str, Role]]:
    """(method, path, role) of every guarded route of the app."""
    table = []
    for route in create_app().state.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith(GUARDED):
            continue
        if route.path in PUBLIC:
            assert not guards(route), route.path
            continue
        found = guards(route)
        assert len(found) == 1, f"{route.path} must declare exactly one role, has {found}"
        (guard,) = found
        table.extend((method, route.path_format, guard.role) for method in sorted(route.methods))
    return table


def _deletes_the_issue(route: tuple[str, str, Role]) -> bool:
    return route[:2] == ("DELETE", "/api/v1/issues/{issue_id}")


# Each route's own role is let through, so an action runs on the one seeded issue: the one that
# deletes it (the draft is a draft again after "to-draft") comes last, or the rest find nothing.
ROUTES = sorted(routes(), key=_deletes_the_issue)
TARGET = "target@example.org"
BELOW = {Role.EDITOR: Role.VIEWER, Role.PUBLISHER: Role.EDITOR, Role.ADMIN: Role.PUBLISHER}


def test_the_table_covers_the_app() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert "/editor/issues/{issue_id}/approve" in paths
    assert "/api/v1/issues/{issue_id}/send" in paths
    assert "/editor/users" in paths and "/editor/audit" in paths
    roles = {(method, path): role for method, path, role in ROUTES}
    assert roles[("POST", "/editor/issues/{issue_id}/edit")] == Role.EDITOR
    assert roles[("POST", "/editor/issues/{issue_id}/approve")] == Role.PUBLISHER
    assert roles[("POST", "/api/v1/issues/{issue_id}/cancel")] == Role.PUBLISHER
    assert roles[("GET", "/editor/users")] == Role.ADMIN
    assert roles[("GET", "/api/v1/issues")] == Role.VIEWER
    for admins in (
        ("POST", "/editor/subscribers/new"),
        ("POST", "/editor/subscribers/{subscriber_id}/erase"),
        ("GET", "/editor/subscribers/export"),
        ("POST", "/editor/suppressions/{suppression_id}/lift"),
        ("DELETE", "/api/v1/subscribers/{subscriber_id}"),
        ("GET", "/api/v1/subscribers/{subscriber_id}/data"),
        ("GET", "/api/v1/exports/subscribers"),
        ("POST", "/api/v1/suppressions"),
    ):
        assert roles[admins] == Role.ADMIN, admins
    # Lists and sources: anyone reads, admins change.
    assert roles[("GET", "/editor/lists/{slug}")] == Role.VIEWER
    assert roles[("POST", "/editor/lists/{slug}")] == Role.ADMIN
    assert roles[("GET", "/editor/lists/new")] == Role.ADMIN
    assert roles[("GET", "/editor/sources/{source_id}")] == Role.VIEWER
    assert roles[("POST", "/editor/sources/try")] == Role.ADMIN
    assert roles[("POST", "/editor/sources/{source_id}/fetch")] == Role.ADMIN
    assert roles[("POST", "/api/v1/lists")] == Role.ADMIN
    assert roles[("PATCH", "/api/v1/sources/{source_id}")] == Role.ADMIN
    assert roles[("GET", "/api/v1/sources/{source_id}")] == Role.VIEWER
    # Scheduling and sending to the rest are a publisher's; items an editor's; reports anyone's.
    assert roles[("POST", "/editor/issues/{issue_id}/schedule")] == Role.PUBLISHER
    assert roles[("PUT", "/api/v1/issues/{issue_id}/schedule")] == Role.PUBLISHER
    assert roles[("POST", "/api/v1/issues/{issue_id}/send-rest")] == Role.PUBLISHER
    assert roles[("POST", "/editor/issues/{issue_id}/items")] == Role.EDITOR
    assert roles[("PATCH", "/api/v1/issues/{issue_id}/items/{item_id}")] == Role.EDITOR
    assert roles[("GET", "/editor/issues/{issue_id}/report")] == Role.VIEWER
    assert roles[("GET", "/editor/issues/{issue_id}/progress.json")] == Role.VIEWER


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    from digest.db import Base, get_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('roles') / 'digest.db'}"
    Base.metadata.create_all(get_engine(url))
    with session_factory(url)() as session:
        seeded = seed_issue(session)
        grant_all(session)
        grant(session, Role.VIEWER, email=TARGET)  # whom the admin's user routes act on
    yield url, seeded


@pytest.fixture(scope="module")
def clients(world: tuple[str, Seeded]) -> Iterator[dict[Role | str, TestClient]]:
    """A signed-in browser per role, and a client without cookies for the API's tokens."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIGEST_DATABASE_URL", world[0])
        reset_settings()
        app = create_app()
        made: dict[Role | str, TestClient] = {
            role: signed_in(TestClient(app, follow_redirects=False), role) for role in Role
        }
        made["api"] = TestClient(app, follow_redirects=False)
        yield made
        for client in made.values():
            client.close()
    reset_settings()


def concrete(path: str, seeded: Seeded, user_id: int) -> str:
    values = {
        "issue_id": seeded.issue_id,
        "item_id": seeded.item_ids[0],
        "slug": "coop-news",
        "user_id": user_id,
        "subscriber_id": 1,
        "token_id": 999_999,  # nobody's: revoking it is a 404, not a lost token
        "suppression_id": 999_999,
        "source_id": seeded.source_id,
        "topic_slug": "no-such-topic",
        "kind": "sent",  # a delivery report's list
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def csrf_of(client: TestClient) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/editor/issues").text)
    assert match
    return match.group(1)


def call(clients: dict[Role | str, TestClient], method: str, path: str, role: Role) -> int:
    if path.startswith("/api/v1/"):
        headers = {**bearer(role), "X-Requested-With": "test"}
        body = {"position": 0} if path.endswith("/move") else {}
        json = body if method in ("POST", "PATCH") else None
        return clients["api"].request(method, path, headers=headers, json=json).status_code
    client = clients[role]
    data = {"csrf": csrf_of(client)} if method == "POST" else None
    return client.request(method, path, data=data).status_code


def audit_count(url: str) -> int:
    with session_factory(url)() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


@pytest.mark.parametrize(("method", "path", "role"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_the_role_below_is_refused(
    world: tuple[str, Seeded],
    clients: dict[Role | str, TestClient],
    method: str,
    path: str,
    role: Role,
) -> None:
    url, seeded = world
    with session_factory(url)() as session:
        viewer_id = session.scalar(select(User.id).where(User.email == TARGET))
        assert viewer_id
        issue_before = session.get(Issue, seeded.issue_id)
        assert issue_before is not None
        status_before = issue_before.status
    target = concrete(path, seeded, viewer_id)
    entries = audit_count(url)

    # Nobody signed in: the sign-in page (editor) or 401 (API).
    anonymous = clients["api"]
    status = anonymous.request(method, target).status_code
    assert status == (401 if path.startswith("/api/v1/") else 303), (method, target)

    if role in BELOW:
        lower = BELOW[role]
        status = call(clients, method, target, lower)
        assert status == 403, (method, target, lower, status)
        # Refused: nothing changed, nothing logged.
        assert audit_count(url) == entries
        with session_factory(url)() as session:
            issue = session.get(Issue, seeded.issue_id)
            assert issue is not None and issue.status == status_before

    # The role itself is let through (whatever the action then answers).
    status = call(clients, method, target, role)
    assert status not in (401, 403), (method, target, role, status)


def test_a_refused_approval_leaves_the_draft(
    world: tuple[str, Seeded], clients: dict[Role | str, TestClient]
) -> None:
    """The page's answer to an editor who tries to approve: the reason, and nothing done."""
    url, seeded = world
    before = audit_count(url)
    editor = clients[Role.EDITOR]
    response = editor.post(
        f"/editor/issues/{seeded.issue_id}/approve", data={"csrf": csrf_of(editor)}
    )
    assert response.status_code == 403
    assert "your role (editor) may not do this: it needs publisher" in response.text
    assert audit_count(url) == before
