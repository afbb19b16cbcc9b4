"""The one poll engine: what to watch, which calls fit the request budget, and the snapshots they make."""
