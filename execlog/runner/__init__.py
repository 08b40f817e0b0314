"""Child processes: start, read and split their output, executors, normalizers, the demo agent."""
