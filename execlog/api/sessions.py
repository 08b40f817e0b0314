"""Sessions and execution processes (CONTRACT.md, "Sessions and processes")."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from execlog.api.dependencies import ServicesDep, parse_id
from execlog.api.envelope import success_response
from execlog.api.resources import process_to_json, session_to_json
from execlog.runner.supervisor import SessionSpec

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["sessions"])


class CreateSessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: str = Field(description="`script`, `claude-code`, `codex` or `demo`.")
    prompt: str | None = Field(None, description="The agent's prompt (coding agents).")
    command: list[str] | None = Field(None, min_length=1, description="argv (executor `script`).")
    working_dir: str | None = None
    setup_script: str | None = Field(None, description="Shell script run first; must succeed.")
    cleanup_script: str | None = Field(None, description="Shell script run after the agent.")


class FollowUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)


@router.post("/sessions", status_code=201)
async def create_session(body: CreateSessionBody, services: ServicesDep) -> Response:
    """Create a session and start its first process (setup script, else the agent/command)."""
    session = await services.supervisor.create_session(SessionSpec(**body.model_dump()))
    return success_response(session_to_json(session), 201)


@router.get("/sessions")
async def list_sessions(services: ServicesDep) -> Response:
    """Sessions, newest first, each with its processes."""
    records = await services.supervisor.list_sessions()
    return success_response([session_to_json(s) for s in records])


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, services: ServicesDep) -> Response:
    record = await services.supervisor.get_session(parse_id(session_id, "session"))
    return success_response(session_to_json(record))


@router.post("/sessions/{session_id}/follow-up", status_code=201)
async def follow_up(session_id: str, body: FollowUpBody, services: ServicesDep) -> Response:
    """Start a follow-up turn that resumes the agent's newest session id."""
    record = await services.supervisor.follow_up(parse_id(session_id, "session"), body.prompt)
    return success_response(process_to_json(record), 201)


@router.get("/execution-processes/{process_id}")
async def get_process(process_id: str, services: ServicesDep) -> Response:
    record = await services.supervisor.get_process(parse_id(process_id, "execution process"))
    return success_response(process_to_json(record))


@router.post("/execution-processes/{process_id}/stop")
async def stop_process(process_id: str, services: ServicesDep) -> Response:
    """SIGTERM to the process group, SIGKILL after the grace period; returns the ended process."""
    record = await services.supervisor.stop(parse_id(process_id, "execution process"))
    return success_response(process_to_json(record))
