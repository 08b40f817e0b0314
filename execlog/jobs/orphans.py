"""Start-up job: processes a crashed server left ``running`` become ``killed``, each with a note
at the next index of both channels saying why (CONTRACT.md, "Concepts": a gap after a crash is
allowed; the note that marks the process killed explains it). Run by the app's lifespan once
the writer runs.

The note goes through the same code as every note execlog adds (``ProcessPipeline.add_entry``),
so it gets the same raw and normalized entries and legacy JSONL lines as any other, whatever
the persistence mode.
"""

from __future__ import annotations

import logging
from typing import Final

from execlog.conversation import (
    system_message_entry,
)
from execlog.live.msg_store import MsgStore
from execlog.protocol import Channel, now_ms
from execlog.runner.pipeline import ProcessPipeline
from execlog.storage.entries import EntryStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import LogWriter

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
        pipeline = ProcessPipeline(
            process_id,
            await _store_after_stored(entries, process_id, "raw"),
            await _store_after_stored(entries, process_id, "normalized"),
            writer,
            None,
            on_session_id=_ignore,
            on_summary=_ignore,
        )
        await pipeline.add_entry(system_message_entry(ORPHAN_NOTE), raw_line=ORPHAN_NOTE)
    await writer.flush()
    if ids:
        logger.warning("marked %d orphaned process(es) killed", len(ids))
    return ids


async def _store_after_stored(entries: EntryStore, process_id: str, channel: Channel) -> MsgStore:
    """A store for the one note, whose indexes continue from the stored maximum."""
    first_index = await entries.anext_index(process_id, channel)
    return MsgStore(
        process_id, channel, max_bytes=1, max_entries=1, queue_capacity=1, first_index=first_index
    )


async def _ignore(_value: str) -> None:
    """An ended process reports no agent session id or summary."""
