"""The admin's CSV upload and `digest subscribers import`, on both stores: rows are confirmed
only when the uploader says consent was recorded, otherwise pending with a confirmation mail
queued; rejected rows come back by line and reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import AuditEntry, SignupRequest
from digest.subscribers.lists import create_list
from digest.subscribers.service import count_by_status
from digest.web.app import create_app
from tests.accounts import grant, signed_in
from tests.helpers import DIGEST, clean_env

CSV = (
    "email,name\n"
    + "".join(f"person{i}@example.org,Person {i}\n" for i in range(200))
    + "broken-address,Nobody\n"  # line 202
    + "person5@example.org,Again\n"  # line 203
)


def upload(client: TestClient, list_id: int, consent: bool) -> str:
    page = client.get("/editor/subscribers/import")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    data = {"csrf": token.group(1), "list": str(list_id)}
    if consent:
        data["consent"] = "yes"
    files = {"file": ("people.csv", CSV.encode(), "text/csv")}
    response = client.post("/editor/subscribers/import", data=data, files=files)
    assert response.status_code == 200, response.text[:500]
    return response.text


def test_an_upload_without_consent_asks_each_new_row_to_confirm(
    db_url: str, session: Session
) -> None:
    pending = create_list(session, slug="pending", name="Pending list")
    confirmed = create_list(session, slug="confirmed", name="Confirmed list")
    grant(session)
    admin = signed_in(TestClient(create_app(), follow_redirects=False))

    page = upload(admin, pending.id, consent=False)
    assert "200 new subscribers were sent a mail asking them to confirm" in page
    rejected = re.findall(r'<td class="num">(\d+)</td><td>([^<]+)</td>', page)
    assert [line for line, _ in rejected] == ["202", "203"]
    assert "invalid address" in rejected[0][1] and "duplicate" in rejected[1][1]
    assert count_by_status(session, pending.id) == {"pending": 200}
    requests = session.scalar(
        select(func.count()).select_from(SignupRequest).where(SignupRequest.list_id == pending.id)
    )
    assert requests == 200

    page = upload(admin, confirmed.id, consent=True)
    assert "asking them to confirm" not in page
    assert count_by_status(session, confirmed.id) == {"confirmed": 200}
    requests = session.scalar(
        select(func.count()).select_from(SignupRequest).where(SignupRequest.list_id == confirmed.id)
    )
    assert requests == 0
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "import_upload").order_by(AuditEntry.id)
    ).all()
    assert [(e.target_kind, e.target_id, e.detail["added"]) for e in entry] == [
        ("list", "pending", 200),
        ("list", "confirmed", 200),
    ]


def test_the_cli_import_follows_the_same_rule(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    a = create_list(session, slug="a", name="A")
    b = create_list(session, slug="b", name="B")
    session.commit()
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    env = clean_env({"DIGEST_DATABASE_URL": db_url})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [DIGEST, "subscribers", "import", str(path), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    asked = run("--list", "a")
    assert asked.returncode == 0, asked.stderr
    assert "200 asked to confirm by mail" in asked.stdout
    assert asked.stderr.splitlines()[0].startswith("line 202: invalid address")
    consented = run("--list", "b", "--consent-recorded")
    assert consented.returncode == 0 and "0 asked to confirm" in consented.stdout
    assert count_by_status(session, a.id) == {"pending": 200}
    assert count_by_status(session, b.id) == {"confirmed": 200}
