"""Jobs run by the server: start-up backfill, retention cleanup."""
