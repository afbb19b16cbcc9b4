"""Change events between two snapshots: their kinds and messages, the diff, and replay."""
