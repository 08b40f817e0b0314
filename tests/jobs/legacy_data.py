"""Seeds processes whose history exists only as legacy JSONL rows, as an older execlog or an
imported vibe-kanban database leaves them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import ProcessRecord, ProcessRepository, RunReason, SessionRecord

DAY_MS = 86_400_000


def stdout(text: str) -> str:
    return json.dumps({"Stdout": text})


def stderr(text: str) -> str:
    return json.dumps({"Stderr": text})


def patch(op: str, index: int, value: dict[str, Any]) -> str:
    return json.dumps({"JsonPatch": [{"op": op, "path": f"/entries/{index}", "value": value}]})


def seed_process(
    engine: Engine,
    rows: Sequence[str | tuple[str, int]],
    *,
    executor: str = "script",
    run_reason: RunReason = "script",
    status: str = "completed",
    completed_at: int = 1_700_000_000_000,
    process_id: str | None = None,
) -> str:
    """A session and an ended process with ``rows`` of JSONL (text, or (text, inserted_at));
    rows without a time get increasing ones."""
    repository = ProcessRepository(engine)
    session = SessionRecord(str(uuid.uuid4()), executor, None, completed_at - 10_000)
    repository.insert_session(session)
    pid = process_id or str(uuid.uuid4())
    repository.insert_process(
        ProcessRecord(
            id=pid,
            session_id=session.id,
            run_reason=run_reason,
            status=status,  # type: ignore[arg-type]
            exit_code=0,
            started_at=completed_at - 5_000,
            completed_at=completed_at,
            agent_session_id=None,
            action={"executor": executor, "argv": []},
        ),
        prompt="do it" if run_reason == "codingagent" else None,
    )
    timed = [
        row if isinstance(row, tuple) else (row, completed_at - 5_000 + number)
        for number, row in enumerate(rows)
    ]
    with engine.begin() as connection:
        for text, inserted_at in timed:
            LegacyLogStore(engine).append_rows(connection, pid, [(text, inserted_at)])
    return pid
