"""Tool-call approvals: an agent's hook asks, a person decides over HTTP, the agent waits.

The tool call's normalized entry is restated (replaced at its index) as ``pending_approval``,
then ``created`` (approved), ``denied`` or ``timed_out``. Approvals live as long as their
process runs; their outcome is persisted through the entry itself. The service looks a
process up in the runner's registry (it is never attached to one) and settles the pending
approvals of a process the registry closes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from execlog.conversation import (
    status_created,
    status_denied,
    status_pending_approval,
    status_timed_out,
)
from execlog.errors import ApprovalNotFoundError, ConflictError, InvalidRequestError
from execlog.events import ApprovalUpdated, EventBus, SessionEvent
from execlog.protocol import format_timestamp, now_ms
from execlog.runner.registry import ProcessRegistry, RunningProcess

__all__ = ["Approval", "ApprovalService", "ApprovalStatus"]

ApprovalStatus = Literal["pending", "approved", "denied", "timed_out"]


@dataclass(slots=True)
class Approval:
    id: str
    execution_process_id: str
    tool_use_id: str
    tool_name: str
    tool_input: Any
    requested_at: str
    timeout_at: str
    status: ApprovalStatus = "pending"
    reason: str | None = None
    decided: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class ApprovalService:
    def __init__(
        self, bus: EventBus[SessionEvent], registry: ProcessRegistry, timeout_seconds: float
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._timeout_seconds = timeout_seconds
        self._approvals: dict[str, Approval] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[bool]] = set()  # keep timeout restatements alive
        registry.on_close(self._process_ended)

    def _process_ended(self, running: RunningProcess) -> None:
        """The process ended: its pending approvals can no longer be answered."""
        for approval_id in running.approval_ids:
            approval = self._approvals.pop(approval_id, None)
            if approval is not None and approval.status == "pending":
                self._settle(approval, "timed_out", "the process ended")
        running.approval_ids.clear()

    async def request(
        self, process_id: str, tool_use_id: str, tool_name: str, tool_input: Any
    ) -> Approval:
        running = self._registry.get(process_id)
        if running is None:
            raise ConflictError(f"execution process {process_id} is not running")
        now = now_ms()
        approval = Approval(
            id=str(uuid.uuid4()),
            execution_process_id=process_id,
            tool_use_id=tool_use_id,
            tool_name=tool_name,
            tool_input=tool_input,
            requested_at=format_timestamp(now),
            timeout_at=format_timestamp(now + round(self._timeout_seconds * 1000)),
        )
        status = status_pending_approval(approval.id, approval.requested_at, approval.timeout_at)
        if not await running.pipeline.set_tool_status(tool_use_id, status):
            raise InvalidRequestError(
                f"tool call {tool_use_id!r} did not appear in the output of process {process_id}"
            )
        if self._registry.get(process_id) is not running:
            # It ended while we waited for its tool call: nobody can answer any more.
            raise ConflictError(f"execution process {process_id} is not running")
        self._approvals[approval.id] = approval
        running.approval_ids.add(approval.id)
        loop = asyncio.get_running_loop()
        self._timers[approval.id] = loop.call_later(
            self._timeout_seconds, self._expire, approval.id
        )
        self._bus.publish(ApprovalUpdated.of(approval))
        return approval

    def get(self, approval_id: str) -> Approval:
        approval = self._approvals.get(approval_id)
        if approval is None:
            raise ApprovalNotFoundError(approval_id)
        return approval

    def list(self, process_id: str | None = None) -> list[Approval]:
        return [
            a
            for a in self._approvals.values()
            if process_id is None or a.execution_process_id == process_id
        ]

    async def decide(self, approval_id: str, *, approved: bool, reason: str | None) -> Approval:
        approval = self.get(approval_id)
        if approval.status != "pending":
            raise ConflictError(f"approval {approval_id} is already {approval.status}")
        self._settle(approval, "approved" if approved else "denied", reason)
        running = self._registry.get(approval.execution_process_id)
        if running is not None:
            status = status_created() if approved else status_denied(reason)
            await running.pipeline.set_tool_status(approval.tool_use_id, status)
        return approval

    async def wait(self, approval_id: str, timeout_seconds: float) -> Approval:
        """Long poll: returns at once when decided, else after ``timeout_seconds`` (pending)."""
        approval = self.get(approval_id)
        if approval.status == "pending":
            try:
                await asyncio.wait_for(approval.decided.wait(), timeout_seconds)
            except TimeoutError:
                pass
        return approval

    def _expire(self, approval_id: str) -> None:
        approval = self._approvals.get(approval_id)
        if approval is None or approval.status != "pending":
            return
        self._settle(approval, "timed_out", None)
        running = self._registry.get(approval.execution_process_id)
        if running is not None:
            task = asyncio.ensure_future(
                running.pipeline.set_tool_status(approval.tool_use_id, status_timed_out())
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _settle(self, approval: Approval, status: ApprovalStatus, reason: str | None) -> None:
        approval.status = status
        approval.reason = reason
        approval.decided.set()
        timer = self._timers.pop(approval.id, None)
        if timer is not None:
            timer.cancel()
        self._bus.publish(ApprovalUpdated.of(approval))
