"""When a batch chaser that found nothing to claim looks again."""

from datetime import timedelta

from digest.models import utcnow
from workers.tasks import MAX_CHASE_SECONDS, MIN_CHASE_SECONDS, chase_delay


def test_waits_until_the_earliest_retry_is_due() -> None:
    assert 9 < chase_delay(utcnow() + timedelta(seconds=10), 300) <= 10


def test_a_retry_already_due_is_looked_at_almost_at_once_but_never_busily() -> None:
    assert chase_delay(utcnow() - timedelta(seconds=5), 300) == MIN_CHASE_SECONDS


def test_only_leased_rows_left_looks_again_within_half_a_lease_and_at_most_30_s() -> None:
    assert chase_delay(None, 5) == 2.5
    assert chase_delay(None, 300) == MAX_CHASE_SECONDS
    assert chase_delay(utcnow() + timedelta(hours=6), 300) == MAX_CHASE_SECONDS
