"""Recording every poll to SQLite (``--record FILE``) and replaying it (``tunneltop replay FILE``).

``store.Recorder`` writes, ``reader.Recording`` reads any moment back, ``command`` is ``tunneltop replay``, and
``source.ReplaySource`` feeds a recording to the live view. The file's schema is documented in ``schema``.
"""
