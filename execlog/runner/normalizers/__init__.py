"""Agent output (raw lines) in, conversation (NormalizedEntry patches) out."""
