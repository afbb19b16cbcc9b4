"""``tunneltop serve``: the one poll engine, headless and long-running, behind a small HTTP server (``/metrics``
for Prometheus, ``/healthz``, ``/api/v1/snapshot`` and ``/api/v1/events``), and ``attach``, its client."""
