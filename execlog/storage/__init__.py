"""Persistent storage: tables, migrations, the entry store, the legacy JSONL store and the writer."""
