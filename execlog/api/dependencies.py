"""What every route needs: the server's services and path-id validation (malformed → 400)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from execlog.errors import InvalidRequestError
from execlog.protocol import quote_value
from execlog.services import Services

__all__ = ["ServicesDep", "parse_id"]


def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def parse_id(value: str, what: str) -> str:
    """The canonical text form of a UUID path id, or InvalidRequestError naming it."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidRequestError(
            f"malformed {what} id {quote_value(value)}: expected a UUID"
        ) from None
