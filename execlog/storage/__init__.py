"""Persistent storage: tables, migrations, entry store, legacy JSONL store, batched writer."""
