"""The running server's parts, built once from the settings and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from execlog.approvals import ApprovalService
from execlog.config import Settings
from execlog.events import EventBus, SessionEvent
from execlog.history import HistoryService
from execlog.jobs.backfill import LegacyBackfiller
from execlog.jobs.lease import ServerLease
from execlog.jobs.retention import LegacyRetention
from execlog.runner.registry import ProcessRegistry
from execlog.runner.supervisor import Supervisor
from execlog.storage.backfills import BackfillLedger
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.ownership import OwnershipStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import LogWriter

__all__ = ["Services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    maintenance_engine: Engine
    ownership: OwnershipStore
    lease: ServerLease
    entries: EntryStore
    legacy: LegacyLogStore
    repository: ProcessRepository
    writer: LogWriter
    registry: ProcessRegistry
    bus: EventBus[SessionEvent]
    approvals: ApprovalService
    supervisor: Supervisor
    history: HistoryService
    backfiller: LegacyBackfiller
    retention: LegacyRetention

    @classmethod
    def build(cls, settings: Settings) -> Services:
        engine = create_database_engine(
            settings.database_url, timeout_seconds=settings.db_timeout_seconds
        )
        entries = EntryStore(engine)
        legacy = LegacyLogStore(engine)
        repository = ProcessRepository(engine)
        writer = LogWriter(
            entries,
            legacy,
            settings.log_persistence,
            batch_rows=settings.writer_batch_rows,
            queue_rows=settings.writer_queue_rows,
            queue_bytes=settings.writer_queue_bytes,
        )
        registry = ProcessRegistry.from_settings(settings)
        bus: EventBus[SessionEvent] = EventBus()
        approvals = ApprovalService(bus, registry, settings.approval_timeout_seconds)
        ownership = OwnershipStore(engine)
        lease = ServerLease(ownership, settings.lease_heartbeat_seconds)
        supervisor = Supervisor(
            settings,
            repository,
            registry,
            writer,
            bus,
            ownership,
            lease.server_id,
            BackfillLedger(engine),
        )
        writer.on_rejected = supervisor.report_write_error
        history = HistoryService(
            entries,
            registry.store,
            writer,
            repository,
            flush_deadline_seconds=settings.db_timeout_seconds,
        )
        # The legacy jobs' long scans and deletes run on an engine of their own, whose
        # statements the request deadline does not cancel (lock waits it still bounds).
        maintenance_engine = create_database_engine(
            settings.database_url, timeout_seconds=settings.db_timeout_seconds, maintenance=True
        )
        backfiller = LegacyBackfiller.create(
            maintenance_engine, max_line_bytes=settings.max_line_bytes
        )
        # Every stored read of an ended process backfills it first when its JSONL has not
        # been checked (CONTRACT.md: no silent empty fallback).
        history.backfill = backfiller.ensure_backfilled
        return cls(
            settings=settings,
            engine=engine,
            maintenance_engine=maintenance_engine,
            ownership=ownership,
            lease=lease,
            entries=entries,
            legacy=legacy,
            repository=repository,
            writer=writer,
            registry=registry,
            bus=bus,
            approvals=approvals,
            supervisor=supervisor,
            history=history,
            backfiller=backfiller,
            retention=LegacyRetention.create(
                maintenance_engine, backfiller, settings.legacy_jsonl_retention_days
            ),
        )
