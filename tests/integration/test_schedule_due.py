"""The scheduler composes a list once per cron fire in the list's time zone."""

from datetime import datetime

from sqlalchemy.orm import Session

from digest.issues.schedule import claim_due_lists
from digest.subscribers.lists import create_list


def test_each_fire_is_claimed_once(session: Session) -> None:
    lst = create_list(session, slug="news", name="News", timezone="Europe/Paris")
    lst.created_at = datetime(2024, 1, 15)
    session.flush()
    # 1 Feb 09:00 Paris = 08:00 UTC: not yet at 07:59, due at 08:00, then not again.
    assert claim_due_lists(session, datetime(2024, 2, 1, 7, 59)) == []
    assert claim_due_lists(session, datetime(2024, 2, 1, 8, 0)) == [lst.id]
    assert claim_due_lists(session, datetime(2024, 2, 1, 8, 1)) == []
    assert claim_due_lists(session, datetime(2024, 2, 20)) == []
    assert claim_due_lists(session, datetime(2024, 3, 1, 8, 30)) == [lst.id]
