"""Fakes and helpers shared by test modules (no test module imports another):

- ``clock``: the one ``FakeClock`` (monotonic and wall, moved by hand or by the code's sleeps) and ``no_sleep``;
- ``budget``: the request-budget rig (the stand-in behind a ``Doorman`` on the fake clock, ``drive``, ``watch``,
  ``max_in_window``);
- ``live``: the real live app against a loopback server (the fault suite's rig) and ``wait_until``;
- ``terminal``: a real process on a pseudo-terminal, and waits on its screen, its terminal and its exit;
- ``snapshots``: hand-built snapshots, and the change engine's diff checked on the way;
- ``stream``: the headless change stream on the frozen demo account, with changes scripted between polls;
- ``serve``: ``tunneltop serve`` on a free loopback port over the stand-in;
- ``ui``: the live app on the frozen simulated account (``make_app``, ``wait_for_poll``, ``WallClock``, ``plain``);
- ``record``: a recording of the stand-in made by the real engine and Recorder (``record_polls``).

Fixtures (a clean environment, ``clock``, ``server``, ``quick_keys``) are in ``tests/conftest.py``.
"""
