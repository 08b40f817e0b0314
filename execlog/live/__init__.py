"""Bounded in-memory history per running process and channel, with subscribers."""
