"""Tool-call approvals: an agent's hook requests one and waits; a person decides."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from execlog.api.dependencies import ServicesDep, parse_id
from execlog.api.envelope import success_response
from execlog.api.resources import approval_to_json

__all__ = ["router"]

router = APIRouter(prefix="/api/approvals", tags=["approvals"])


class ApprovalRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    execution_process_id: str
    tool_use_id: str = Field(min_length=1)
    tool_name: str = Field(min_length=1)
    tool_input: Any = None


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approved: bool
    reason: str | None = None


@router.post("", status_code=201)
async def request_approval(body: ApprovalRequestBody, services: ServicesDep) -> Response:
    """Called by an agent's hook: the tool call's entry becomes `pending_approval`."""
    approval = await services.approvals.request(
        parse_id(body.execution_process_id, "execution process"),
        body.tool_use_id,
        body.tool_name,
        body.tool_input,
    )
    return success_response(approval_to_json(approval), 201)


@router.get("")
async def list_approvals(
    services: ServicesDep, execution_process_id: str | None = None
) -> Response:
    """Approvals of running processes (pending and decided)."""
    pid = (
        None
        if execution_process_id is None
        else parse_id(execution_process_id, "execution process")
    )
    return success_response([approval_to_json(a) for a in services.approvals.list(pid)])


@router.get("/{approval_id}")
async def get_approval(approval_id: str, services: ServicesDep) -> Response:
    approval = services.approvals.get(parse_id(approval_id, "approval"))
    return success_response(approval_to_json(approval))


@router.get("/{approval_id}/wait")
async def wait_for_decision(
    approval_id: str,
    services: ServicesDep,
    timeout_seconds: Annotated[float, Query(gt=0, le=120)] = 30.0,
) -> Response:
    """Long poll: returns when decided, or after `timeout_seconds` still `pending`."""
    approval = await services.approvals.wait(parse_id(approval_id, "approval"), timeout_seconds)
    return success_response(approval_to_json(approval))


@router.post("/{approval_id}/respond")
async def respond(approval_id: str, body: DecisionBody, services: ServicesDep) -> Response:
    """Approve or deny (with an optional reason); 409 when already decided."""
    approval = await services.approvals.decide(
        parse_id(approval_id, "approval"), approved=body.approved, reason=body.reason
    )
    return success_response(approval_to_json(approval))
