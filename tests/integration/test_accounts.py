"""Accounts on both stores: the first-run page and who may reach it, `digest users`, sessions
ending when a user is disabled or gets a new password, API tokens, and the audit log."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.accounts import users
from digest.cli import main
from digest.config import reset_settings
from digest.models import AuditEntry, Issue, Role, User
from digest.web.app import create_app
from tests.accounts import PASSWORD, bearer, grant, sign_in, signed_in
from tests.integration.test_editor_api import API, seed_issue

SETUP = {"email": "First@Example.org", "name": "Fran", "password": PASSWORD}


def form_csrf(client: TestClient, path: str, **kwargs: object) -> str:
    page = client.get(path, **kwargs)  # type: ignore[arg-type]
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def setup_post(client: TestClient, token: str = "", **extra: str) -> object:
    query = f"?token={token}" if token else ""
    csrf = form_csrf(client, f"/editor/setup{query}")
    data = {**SETUP, "password_again": SETUP["password"], "token": token, "csrf": csrf, **extra}
    return client.post("/editor/setup", data=data)


def test_a_fresh_install_asks_for_the_first_admin_only_of_whom_may_claim_it(
    db_url: str, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SETUP_TOKEN", "s3tup-token-from-digest-serve")
    reset_settings()
    app = create_app()
    # The sign-in page of a fresh install sends to the first-run page.
    stranger = TestClient(app, client=("203.0.113.5", 5000), follow_redirects=False)
    assert stranger.get("/editor/signin").headers["location"] == "/editor/setup"
    # From another machine: refused without the token, or with a wrong one.
    assert stranger.get("/editor/setup").status_code == 403
    assert stranger.get("/editor/setup?token=guess").status_code == 403
    # On this machine, but through a proxy: another machine's request, refused.
    proxied = TestClient(app, client=("127.0.0.1", 5000), follow_redirects=False)
    headers = {"X-Forwarded-For": "203.0.113.5"}
    assert proxied.get("/editor/setup", headers=headers).status_code == 403
    assert session.scalar(select(User.id)) is None

    # Passwords that differ, or too short: nothing is created.
    local = TestClient(app, client=("127.0.0.1", 5000), follow_redirects=False)
    assert local.get("/editor/setup").status_code == 200
    differ = setup_post(local, password_again="something else entirely")
    assert differ.status_code == 400 and "The passwords differ" in differ.text  # type: ignore[attr-defined]
    short = setup_post(local, password="short", password_again="short")
    assert short.status_code == 400 and "at least 10" in short.text  # type: ignore[attr-defined]
    assert session.scalar(select(User.id)) is None

    # The token's holder claims it, and is signed in at once.
    done = setup_post(stranger, token="s3tup-token-from-digest-serve")
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert done.headers["location"] == "/editor/issues?done=welcome"  # type: ignore[attr-defined]
    welcome = stranger.get("/editor/issues?done=welcome")
    assert welcome.status_code == 200 and "first admin" in welcome.text
    user = session.scalar(select(User))
    assert user is not None and (user.email, user.role, user.name) == (
        "first@example.org",
        Role.ADMIN,
        "Fran",
    )
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    # Then the page is gone, for everyone, token or not.
    assert local.get("/editor/setup").status_code == 404
    assert stranger.get("/editor/setup?token=s3tup-token-from-digest-serve").status_code == 404
    entry = session.scalar(select(AuditEntry))
    assert entry is not None
    assert (entry.actor, entry.action, entry.target_kind, entry.address) == (
        "first@example.org",
        "first_admin",
        "user",
        "203.0.113.5",
    )


def test_two_first_run_forms_at_once_make_one_admin(db_url: str, session: Session) -> None:
    users.add_first_admin(session, "one@example.org", PASSWORD)
    with pytest.raises(Exception, match="already has users"):
        users.add_first_admin(session, "two@example.org", PASSWORD)


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`digest ARGS` in this process (its exit code, stdout, stderr), reading `stdin`: nine
    runs of the command in a process each took 25 s, nearly all of it importing."""

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as patched:
            patched.setattr(sys, "stdin", io.StringIO(stdin))
            reset_settings()
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["digest", *args], code, out, err)

    return run


def test_digest_users_add_list_disable_and_set_password(
    cli: Cli, session: Session, seeded_issue: int
) -> None:
    add = cli(
        "users", "add", "Ed@Example.org", "--role", "editor", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert "added ed@example.org (editor)" in add.stdout
    again = cli("users", "add", "ed@example.org", "--password-stdin", stdin="x" * 12)
    assert (
        again.returncode == 2
        and again.stderr.strip() == "error: a user ed@example.org already exists"
    )
    weak = cli("users", "add", "w@example.org", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    bad_role = cli("users", "add", "r@example.org", "--role", "owner")
    assert bad_role.returncode == 2
    listed = cli("users", "list")
    assert (
        listed.returncode == 0 and "ed@example.org" in listed.stdout and "editor" in listed.stdout
    )

    # Signed in as that editor; a new password signs them out, disabling stops them.
    client = TestClient(create_app(), follow_redirects=False)
    assert sign_in(client, "ed@example.org").status_code == 303
    assert client.get("/editor/issues").status_code == 200
    new = "a whole new passphrase"
    done = cli("users", "set-password", "ed@example.org", "--password-stdin", stdin=new)
    assert done.returncode == 0, done.stderr
    assert client.get("/editor/issues").status_code == 303  # the session ended
    assert sign_in(client, "ed@example.org").status_code == 401  # the old password
    assert sign_in(client, "ed@example.org", new).status_code == 303
    assert cli("users", "disable", "ed@example.org").returncode == 0
    assert client.get("/editor/issues").status_code == 303
    assert sign_in(client, "ed@example.org", new).status_code == 401
    assert cli("users", "disable", "nobody@example.org").returncode == 2

    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["add_user", "set_password", "disable"]
    actor = session.scalar(select(AuditEntry.actor))
    assert actor is not None and actor.startswith("cli:")


@pytest.fixture
def seeded_issue(session: Session) -> int:
    return seed_issue(session).issue_id


def test_the_last_admin_cannot_be_disabled_or_demoted(db_url: str, session: Session) -> None:
    grant(session)
    with pytest.raises(Exception, match="last admin"):
        users.disable_user(session, "admin@example.org")
    with pytest.raises(Exception, match="last admin"):
        users.set_role(session, "admin@example.org", Role.EDITOR)


def test_api_tokens_are_shown_once_stored_hashed_and_die_with_revocation(
    db_url: str, session: Session, seeded_issue: int
) -> None:
    grant(session, Role.EDITOR)
    client = signed_in(TestClient(create_app(), follow_redirects=False), Role.EDITOR)
    csrf = form_csrf(client, "/editor/account")
    made = client.post("/editor/account/tokens", data={"csrf": csrf, "name": "nightly script"})
    assert made.status_code == 200
    match = re.search(r'id="new-token">(dgt_[A-Za-z0-9_-]+)<', made.text)
    assert match, made.text
    token = match.group(1)
    assert token not in client.get("/editor/account").text  # shown once
    stored = session.execute(
        select(AuditEntry.action, AuditEntry.detail).where(AuditEntry.action == "new_token")
    ).one()
    assert token not in str(stored)
    from digest.models import ApiToken

    row = session.scalar(select(ApiToken).where(ApiToken.name == "nightly script"))
    assert row is not None and token not in (row.token_hash, row.prefix)

    api = TestClient(create_app())
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/issues", headers=headers).status_code == 200
    # An editor's token edits drafts but may not approve.
    edit = api.patch(
        f"/api/v1/issues/{seeded_issue}", json={"subject": "By script"}, headers=headers
    )
    assert edit.status_code == 200
    assert api.post(f"/api/v1/issues/{seeded_issue}/approve", headers=headers).status_code == 403
    revoke = client.post(f"/editor/account/tokens/{row.id}/revoke", data={"csrf": csrf})
    assert revoke.status_code == 303
    assert api.get("/api/v1/issues", headers=headers).status_code == 401


def test_the_audit_log_says_who_did_what_to_which_when_and_from_where(
    db_url: str, session: Session, seeded_issue: int
) -> None:
    grant(session)
    grant(session, Role.VIEWER)
    api = TestClient(create_app(), client=("198.51.100.20", 1))
    assert api.post(f"/api/v1/issues/{seeded_issue}/approve", headers=API).status_code == 200
    # Refused (role) or failed (state): no entry.
    assert (
        api.post(f"/api/v1/issues/{seeded_issue}/cancel", headers=bearer(Role.VIEWER)).status_code
        == 403
    )
    assert api.post(f"/api/v1/issues/{seeded_issue}/approve", headers=API).status_code == 400
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.actor, e.action, e.target_kind, e.target_id, e.address) for e in entries] == [
        ("admin@example.org", "approve", "issue", str(seeded_issue), "198.51.100.20")
    ]
    issue = session.get(Issue, seeded_issue)
    assert issue is not None and issue.status == "approved"

    admin = signed_in(TestClient(create_app(), follow_redirects=False))
    page = admin.get("/editor/audit?target_kind=issue&action=approve")
    assert page.status_code == 200
    assert "admin@example.org" in page.text and "198.51.100.20" in page.text
    assert "No entries match" in admin.get("/editor/audit?action=send").text
    viewer = signed_in(TestClient(create_app(), follow_redirects=False), Role.VIEWER)
    assert viewer.get("/editor/audit").status_code == 403
