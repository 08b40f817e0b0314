"""Alembic migrations of execlog's schema (applied at start-up and by ``execlog migrate``)."""
