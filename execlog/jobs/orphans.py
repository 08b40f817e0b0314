"""Start-up job: processes a crashed server left ``running`` become ``killed``, each with a note
at the next index of both channels saying why (CONTRACT.md, "Concepts": a gap after a crash is
allowed; the note that marks the process killed explains it). Run by the app's lifespan once
the writer runs; the writer decides what the persistence mode keeps.
"""

from __future__ import annotations

import logging
from typing import Final

from execlog.protocol import (
    encode_legacy_stream_line,
    encode_normalized_entry,
    encode_raw_entry,
    now_ms,
)
from execlog.runner.normalizers.base import system_message_entry
from execlog.storage.entries import EntryStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import EntryWrite, LegacyLineWrite, LogWriter, WriteOp

__all__ = ["ORPHAN_NOTE", "mark_orphans"]

logger = logging.getLogger(__name__)

ORPHAN_NOTE: Final = "execlog: the server stopped while this process was running; marked killed"


async def mark_orphans(
    repository: ProcessRepository, entries: EntryStore, writer: LogWriter
) -> list[str]:
    """Mark the orphans killed, write their notes, and wait until the notes are committed.
    Returns the orphans' ids."""
    ids = await repository.amark_running_as_killed(now_ms())
    for process_id in ids:
        ops: list[WriteOp] = [
            EntryWrite(
                process_id,
                "raw",
                await entries.anext_index(process_id, "raw"),
                encode_raw_entry("stderr", ORPHAN_NOTE),
            ),
            EntryWrite(
                process_id,
                "normalized",
                await entries.anext_index(process_id, "normalized"),
                encode_normalized_entry(system_message_entry(ORPHAN_NOTE)),
            ),
            LegacyLineWrite(process_id, encode_legacy_stream_line("stderr", ORPHAN_NOTE)),
        ]
        await writer.submit_many(ops)
    await writer.flush()
    if ids:
        logger.warning("marked %d orphaned process(es) killed", len(ids))
    return ids
