"""Query parameters of history pages and of the raw-log tools (search): ``limit``, ``cursor``
and ``around``, with the contract's bounds and whole-number rule from ``protocol.py``.

``around=N`` (a permalink) and ``cursor`` both say where a page ends; a request may name one
of them, not both (400).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator

from execlog.errors import InvalidRequestError
from execlog.history import cursor_around
from execlog.protocol import CURSOR_MIN, INDEX_MAX, LIMIT_MAX, LIMIT_MIN, require_whole_number

__all__ = ["AroundQuery", "CursorQuery", "LimitQuery", "page_cursor"]


LimitQuery = Annotated[
    int | None,
    Query(
        ge=LIMIT_MIN, le=LIMIT_MAX, description="Entries per page (default 200 raw, 20 normalized)."
    ),
    BeforeValidator(require_whole_number),
]
CursorQuery = Annotated[
    int | None,
    Query(
        ge=CURSOR_MIN,
        le=INDEX_MAX,
        description="Return the newest entries whose index is below this.",
    ),
    BeforeValidator(require_whole_number),
]
AroundQuery = Annotated[
    int | None,
    Query(
        ge=CURSOR_MIN,
        le=INDEX_MAX,
        description=(
            "Instead of `cursor`: the page of `limit` entries centred on this entry index "
            "(permalinks); `has_more` and `next_cursor` as for any page."
        ),
    ),
    BeforeValidator(require_whole_number),
]


def page_cursor(limit: int, cursor: int | None, around: int | None) -> int | None:
    """The cursor of the page the request names: ``cursor``, the one ``around`` implies, or
    None for the tail."""
    if around is None:
        return cursor
    if cursor is not None:
        raise InvalidRequestError("cursor and around cannot be combined: name one of them")
    # Past the last 64-bit index is the same page as at it (the database stores 64 bits).
    return min(cursor_around(around, limit), INDEX_MAX)
