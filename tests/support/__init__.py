"""Fakes and helpers shared by test modules (no test module imports another):

- ``clock``: the one ``FakeClock`` (monotonic and wall, moved by hand or by the code's sleeps) and ``no_sleep``;
- ``budget``: the request-budget rig (the stand-in behind a ``Doorman`` on the fake clock, ``drive``, ``watch``,
  ``max_in_window``);
- ``live``: the real live app against a loopback server (the fault suite's rig) and ``wait_until``;
- ``terminal``: a real process on a pseudo-terminal, and waits on its screen, its terminal and its exit.

Fixtures (a clean environment, ``clock``, ``server``, ``quick_keys``) are in ``tests/conftest.py``.
"""
