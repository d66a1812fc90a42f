"""Every column of words is one StrEnum beside its model (stored as its values)."""

import pytest
from sqlalchemy import Enum as SqlEnum

from digest.db import Base
from digest.models import DeliveryStatus, Issue, IssueStatus, Source, SourceKind


def test_each_column_of_words_is_an_enum_with_a_check_constraint() -> None:
    words = {
        f"{table.name}.{column.name}": column.type
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, SqlEnum)
    }
    assert set(words) >= {
        "sources.kind",
        "lists.grouping",
        "subscriptions.status",
        "issues.status",
        "deliveries.status",
        "suppressions.reason",
        "events.kind",
        "signup_requests.outcome",
        "scheduled_issues.state",
    }
    for name, kind in words.items():
        assert kind.create_constraint and not kind.native_enum, name
        # Stored as the enum's values ("sent"), never its member names ("SENT").
        assert kind.enums == [m.value for m in kind.enum_class], name


def test_a_word_becomes_its_member_where_it_is_assigned_and_a_misspelt_one_fails_there() -> None:
    issue = Issue(status="sent")
    assert issue.status is IssueStatus.SENT and issue.status == "sent"
    issue.status = "paused"
    assert issue.status is IssueStatus.PAUSED
    with pytest.raises(ValueError, match="'sendng' is not a valid IssueStatus"):
        issue.status = "sendng"
    with pytest.raises(ValueError):
        Source(kind="rss")
    assert Source(kind="html").kind is SourceKind.HTML
    assert f"{DeliveryStatus.SKIPPED}" == "skipped"  # messages and JSON show the word
