"""Accounts in a real browser: the first admin signs up on a fresh install, adds a viewer,
and reads the audit log; a viewer is refused an edit; a form sent without its CSRF token is
refused. Screenshots as tests/e2e/conftest.py keeps them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Issue, Role, User
from tests.accounts import PASSWORD, email_of, grant
from tests.e2e.test_editor_browser import WIDE, editor_page, editor_server
from tests.e2e.test_web_browser import new_page
from tests.integration.test_editor_api import seed_issue


def test_the_first_admin_signs_up_adds_a_viewer_and_reads_the_audit_log(
    browser, db_url: str, session: Session, shots: Path
) -> None:
    seed_issue(session)
    with editor_server() as base_url:
        page = new_page(browser, WIDE)
        page.goto(f"{base_url}/editor")  # no user yet: sign-in sends to the first-run page
        page.get_by_role("heading", name="Create the first admin").wait_for()
        assert page.url == f"{base_url}/editor/setup"
        page.screenshot(path=shots / "first-run.png", full_page=True)
        page.get_by_label("Your name").fill("Fran Admin")
        page.get_by_label("Email address").fill("fran@example.org")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password again").fill(PASSWORD)
        page.get_by_role("button", name="Create admin and sign in").click()
        page.get_by_role("status").filter(has_text="first admin").wait_for()
        page.screenshot(path=shots / "first-admin-issues.png", full_page=True)

        page.get_by_role("link", name="Users").click()
        page.get_by_label("Email address").fill("vic@example.org")
        page.get_by_label("Name", exact=True).fill("Vic Viewer")
        page.get_by_label("Password", exact=True).fill("viewer passphrase 1")
        page.get_by_role("button", name="Add user").click()
        page.get_by_role("status").filter(has_text="User added").wait_for()
        page.get_by_role("button", name="Disable vic@example.org").wait_for()
        page.screenshot(path=shots / "users.png", full_page=True)
        session.expire_all()
        vic = session.scalar(select(User).where(User.email == "vic@example.org"))
        assert vic is not None and vic.role == Role.VIEWER

        page.get_by_role("link", name="Audit log").click()
        page.get_by_role("row").filter(has_text="add_user").filter(
            has_text=f"user {vic.id}"
        ).wait_for()
        page.get_by_role("cell", name="first_admin", exact=True).wait_for()
        page.screenshot(path=shots / "audit-log.png", full_page=True)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("status").filter(has_text="Signed out").wait_for()
        page.goto(f"{base_url}/editor/setup")  # the first-run page is gone
        assert "Create the first admin" not in page.content()
        assert page.blocked == []
        page.context.close()


def test_a_viewer_is_refused_an_edit(browser, db_url: str, session: Session, shots: Path) -> None:
    seeded = seed_issue(session)
    grant(session, Role.VIEWER)
    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url, email_of(Role.VIEWER))
        page.goto(f"{base_url}/editor/issues/{seeded.issue_id}")
        page.get_by_role("textbox", name="Subject").fill("A viewer's subject")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_role("heading", name="Not allowed").wait_for()
        page.get_by_text("your role (viewer) may not do this: it needs editor").wait_for()
        page.screenshot(path=shots / "viewer-refused.png", full_page=True)
        session.expire_all()
        issue = session.get(Issue, seeded.issue_id)
        assert issue is not None and issue.subject != "A viewer's subject"
        page.context.close()


def test_a_form_without_its_csrf_token_is_refused(
    browser, db_url: str, session: Session, shots: Path
) -> None:
    seeded = seed_issue(session)
    grant(session, Role.EDITOR)
    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url, email_of(Role.EDITOR))
        page.goto(f"{base_url}/editor/issues/{seeded.issue_id}")
        page.get_by_role("textbox", name="Subject").fill("Forged subject")
        # A forged copy of the form: everything but the session's token.
        page.eval_on_selector_all("input[name=csrf]", "els => els.forEach(e => e.remove())")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_role("heading", name="Not allowed").wait_for()
        page.get_by_text("this form has expired or did not come from the editor").wait_for()
        page.screenshot(path=shots / "csrf-refused.png", full_page=True)
        session.expire_all()
        issue = session.get(Issue, seeded.issue_id)
        assert issue is not None and issue.subject != "Forged subject"
        # The same form with its token goes through.
        page.goto(f"{base_url}/editor/issues/{seeded.issue_id}")
        page.get_by_role("textbox", name="Subject").fill("Honest subject")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_role("status").filter(has_text="Changes saved").wait_for()
        page.context.close()
