"""Start-up job: processes whose server crashed become ``killed`` (issue 10).

Only processes of servers whose lease expired are claimed (jobs/lease.py), never those of
another live server on the same database. Each gets a note at the next free index of both
channels - at or above the durable index reservation, so no index a client may have seen is
reused; the note names the gap (CONTRACT.md, "entry index"). The note goes through the same
code as every note execlog adds (``ProcessPipeline.add_entry``), so it gets the same entries and
legacy JSONL lines as any other, whatever the persistence mode.

An orphan whose server ran on this machine in this boot, and whose pid still names the process
it was (same start time), is stopped with everything it started: SIGTERM, then SIGKILL after
``EXECLOG_STOP_GRACE_SECONDS``. Run by the app's lifespan once the writer runs and the lease
is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final

from execlog.conversation import system_message_entry
from execlog.live.msg_store import MsgStore
from execlog.protocol import Channel, now_ms
from execlog.runner.descendants import Descendants, read_boot_id
from execlog.runner.pipeline import ProcessPipeline
from execlog.storage.backfills import BackfillLedger, LedgerRow
from execlog.storage.database import run_in_thread
from execlog.storage.entries import EntryStore
from execlog.storage.ownership import OrphanRecord, OwnershipStore
from execlog.storage.writer import LogWriter

__all__ = ["ORPHAN_NOTE", "mark_orphans", "orphan_note"]

logger = logging.getLogger(__name__)

ORPHAN_NOTE: Final = "execlog: the server stopped while this process was running; marked killed"

# Per channel: (the next index after what is stored, the note's index).
Gaps = Mapping[Channel, tuple[int, int]]


def orphan_note(gaps: Gaps) -> str:
    """The note, naming the indexes that were reserved (perhaps shown live) but never stored."""
    lost = [
        f"{channel} entries {stored} to {note - 1}"
        for channel, (stored, note) in gaps.items()
        if note > stored
    ]
    if not lost:
        return ORPHAN_NOTE
    return (
        f"{ORPHAN_NOTE}; never stored: {', '.join(lost)} "
        "(output the server may have shown live before it stopped)"
    )


async def mark_orphans(
    ownership: OwnershipStore,
    entries: EntryStore,
    writer: LogWriter,
    ledger: BackfillLedger,
    grace_seconds: float,
) -> list[str]:
    """Claim the orphans, write their notes, wait until the notes are committed, and stop the
    orphans that still run here. Returns the orphans' ids."""
    orphans = await ownership.aclaim_orphans(now_ms())
    counts: dict[str, Gaps] = {}
    for orphan in orphans:
        gaps: dict[Channel, tuple[int, int]] = {}
        channel: Channel
        for channel in ("raw", "normalized"):
            stored = await entries.anext_index(orphan.process_id, channel)
            gaps[channel] = (stored, max(stored, orphan.index_reserved(channel)))
        counts[orphan.process_id] = gaps
        pipeline = ProcessPipeline(
            orphan.process_id,
            _note_store(orphan.process_id, "raw", gaps["raw"][1]),
            _note_store(orphan.process_id, "normalized", gaps["normalized"][1]),
            writer,
            None,
            on_session_id=_ignore,
            on_summary=_ignore,
        )
        note = orphan_note(gaps)
        await pipeline.add_entry(system_message_entry(note), raw_line=note)
    await writer.flush()
    if writer.writes_entries:
        # Its entry rows are the history, gap included: a backfill replaying its JSONL would
        # renumber the note into the gap (an index a client may have seen).
        for orphan in orphans:
            note_gaps = counts[orphan.process_id]
            raw_count, normalized_count = note_gaps["raw"][0] + 1, note_gaps["normalized"][0] + 1
            row = LedgerRow(orphan.process_id, raw_count, normalized_count, 0, 0, now_ms())
            await run_in_thread(ledger.record, row)
    if orphans:
        logger.warning("marked %d orphaned process(es) killed", len(orphans))
    boot_id = read_boot_id()
    here = [o for o in orphans if o.pid is not None and o.owner_boot_id == boot_id]
    await asyncio.gather(*(_stop_orphan(orphan, grace_seconds) for orphan in here))
    return [orphan.process_id for orphan in orphans]


def _note_store(process_id: str, channel: Channel, first_index: int) -> MsgStore:
    """A store for the one note, at the index the note must take."""
    return MsgStore(
        process_id, channel, max_bytes=1, max_entries=1, queue_capacity=1, first_index=first_index
    )


async def _ignore(_value: str) -> None:
    """An ended process reports no agent session id or summary."""


async def _stop_orphan(orphan: OrphanRecord, grace_seconds: float) -> None:
    assert orphan.pid is not None
    descendants = Descendants(
        orphan.pid, orphan.process_id, expected_start_time=orphan.pid_start_time
    )
    alive = await descendants.refresh_now(by_environment=True)
    if alive:
        logger.warning(
            "process %s: stopping %d leftover process(es) of a crashed server",
            orphan.process_id,
            len(alive),
        )
        await descendants.terminate(grace_seconds)
