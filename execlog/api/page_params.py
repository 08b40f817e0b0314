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
from execlog.protocol import CURSOR_MIN, LIMIT_MAX, LIMIT_MIN, is_whole_number

__all__ = ["AroundQuery", "CursorQuery", "LimitQuery", "page_cursor"]


def _require_whole_number(value: object) -> object:
    if isinstance(value, str) and not is_whole_number(value):
        raise ValueError("must be a whole number")
    return value


LimitQuery = Annotated[
    int | None,
    Query(
        ge=LIMIT_MIN, le=LIMIT_MAX, description="Entries per page (default 200 raw, 20 normalized)."
    ),
    BeforeValidator(_require_whole_number),
]
CursorQuery = Annotated[
    int | None,
    Query(ge=CURSOR_MIN, description="Return the newest entries whose index is below this."),
    BeforeValidator(_require_whole_number),
]
AroundQuery = Annotated[
    int | None,
    Query(
        ge=CURSOR_MIN,
        description=(
            "Instead of `cursor`: the page of `limit` entries centred on this entry index "
            "(permalinks); `has_more` and `next_cursor` as for any page."
        ),
    ),
    BeforeValidator(_require_whole_number),
]


def page_cursor(limit: int, cursor: int | None, around: int | None) -> int | None:
    """The cursor of the page the request names: ``cursor``, the one ``around`` implies, or
    None for the tail."""
    if around is None:
        return cursor
    if cursor is not None:
        raise InvalidRequestError("cursor and around cannot be combined: name one of them")
    return cursor_around(around, limit)
