"""A stand-in for Claude Code (EXECLOG_CLAUDE_COMMAND) whose two tool calls ask for approval
at the same time, as parallel tool calls do; each result says how it was decided."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from execlog.runner.demo_agent import request_approval

SESSION = "two-approvals-session"
CALLS = [
    ("toolu_rm", "Bash", {"command": "rm -rf build"}),
    ("toolu_write", "Write", {"file_path": "notes.txt", "content": "hi"}),
]


def emit(value: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> None:
    emit({"type": "system", "subtype": "init", "session_id": SESSION, "model": "stand-in"})
    for tool_id, name, arguments in CALLS:
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}
        message = {"id": f"msg_{tool_id}", "role": "assistant", "content": [block]}
        emit({"type": "assistant", "message": message, "session_id": SESSION})
    with ThreadPoolExecutor(len(CALLS)) as pool:
        outcomes = list(pool.map(lambda call: request_approval(*call), CALLS))
    for (tool_id, _, _), outcome in zip(CALLS, outcomes, strict=True):
        result = {
            "type": "tool_result",
            "tool_use_id": tool_id,
            "content": "done" if outcome.approved else (outcome.note or "not approved"),
            "is_error": not outcome.approved,
        }
        emit({"type": "user", "message": {"role": "user", "content": [result]}})
    emit({"type": "result", "subtype": "success", "is_error": False, "session_id": SESSION})


if __name__ == "__main__":
    main()
