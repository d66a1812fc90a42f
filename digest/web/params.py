"""Typed, bounded request parameters: a number in a URL, a query or a form is checked against
what the store can hold before any query sees it, so 2**64 or -1 is a 4xx, never a 500.

Every integer a route takes is one of these (tests/unit/test_web_params.py walks the routes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query
from pydantic import Field

from digest.db import MAX_BIGINT, MAX_INT

# Each bounded by its column (digest.db): issues.id is INTEGER, items.id BIGINT.
IssueId = Annotated[int, Path(ge=1, le=MAX_INT, description="An issue's id.", examples=[1])]
ItemId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="An item's id.", examples=[1])]
SourceId = Annotated[int, Path(ge=1, le=MAX_INT, description="A source's id.", examples=[1])]
IssueNumber = Annotated[
    int, Path(ge=1, le=MAX_INT, description="An issue's number in its list.", examples=[1])
]
# Keyset paging: the last number of the previous page.
BeforeNumber = Annotated[int | None, Query(ge=1, le=MAX_INT, description="Show older than this.")]
# Keyset paging by a row's id: the last key of the previous page (0: the first page).
AfterKey = Annotated[int, Query(ge=0, le=MAX_BIGINT, description="Rows after this key.")]
Offset = Annotated[int, Query(ge=0, le=MAX_BIGINT, description="Rows to skip.")]
Position = Annotated[int, Field(ge=0, le=MAX_INT, description="0-based position in the issue.")]
PositionField = Annotated[int, Form(ge=0, le=MAX_INT, description="0-based position.")]
# A list's slug (lists.SLUG), or its id when all digits.
Slug = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
SlugQuery = Annotated[
    str | None,
    Query(alias="list", min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$"),
]
# A search text: no control characters (PostgreSQL refuses a NUL in any text), at most an
# address's length.
SearchText = Annotated[
    str,
    Query(
        max_length=320,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Part of an address or a name.",
    ),
]
