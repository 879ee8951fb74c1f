"""The run folder as one contract: its names, lock, meta, table, ranking and checkpoints."""
