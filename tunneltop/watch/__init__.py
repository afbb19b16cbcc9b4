"""The poll loop's brain without the UI: where snapshots come from and how they change."""
