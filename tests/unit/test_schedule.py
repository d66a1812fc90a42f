from datetime import datetime

from digest.issues.schedule import last_fire


def test_monthly_fire_in_the_lists_time_zone() -> None:
    # 09:00 in Paris on 1 March 2024 is 08:00 UTC (winter time).
    fire = last_fire("0 9 1 * *", "Europe/Paris", datetime(2024, 3, 15, 12, 0))
    assert fire == datetime(2024, 3, 1, 8, 0)
    # Just before it fires, the previous month's fire is the latest.
    assert last_fire("0 9 1 * *", "Europe/Paris", datetime(2024, 3, 1, 7, 59)) == datetime(
        2024, 2, 1, 8, 0
    )
