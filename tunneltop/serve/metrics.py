"""``/metrics``: a Prometheus collector over the poller's latest snapshot, built at scrape time through
``prometheus_client`` (never hand-written text). A scrape reads what the last poll kept: it sends no request to
Cloudflare.

Labels, and only where they belong: ``tunnel_id`` and ``tunnel_name`` on every per-tunnel series, ``connector_id``
on per-connector ones, ``colo`` and ``state`` on connection counts, ``version`` (cloudflared's) on the connector
info, ``check`` and ``severity`` on findings, ``kind`` on errors. Never a connection id: connections are counted, so
the number of series grows with tunnels and connectors, not with connections.

The series that only change with the tunnels are built and rendered once per tunnels tuple and served as rendered
until it changes (a poll that changed nothing hands back the very same tuple); ages and the poller's own figures
are worked out at each scrape. Only Prometheus' text format is served (no OpenMetrics negotiation), so that the two
rendered parts simply follow each other.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tunneltop import __version__
from tunneltop.model.health import Health
from tunneltop.model.snapshot import TunnelState
from tunneltop.poll.account import utc_now
from tunneltop.sanitize import clean
from tunneltop.serve.poller import Poller, kind_name

TUNNEL = ["tunnel_id", "tunnel_name"]
CONNECTOR = [*TUNNEL, "connector_id"]
HEALTH_STATES = tuple(h.value for h in Health)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _tunnel_labels(state: TunnelState) -> list[str]:
    # API text: made printable (the exposition format escapes quotes, backslashes and newlines, not the rest).
    return [clean(state.tunnel.id, 64), clean(state.tunnel.name, 200) if state.tunnel.name else ""]


def _tunnel_families(tunnels: tuple[TunnelState, ...]) -> list[Metric]:
    """The series that follow from the tunnels alone (not from the time)."""
    health = StateSetMetricFamily(
        "tunneltop_tunnel_health",
        "Health of each tunnel as tunneltop judges it (the API's status and its connections): one state is 1.",
        labels=TUNNEL,
    )
    connectors = GaugeMetricFamily(
        "tunneltop_tunnel_connectors", "cloudflared connectors of the tunnel as last fetched.", labels=TUNNEL
    )
    connections = GaugeMetricFamily(
        "tunneltop_tunnel_connections",
        "Edge connections of the tunnel by Cloudflare data centre (colo) and state (active, pending reconnect, "
        "unknown when the API does not say).",
        labels=[*TUNNEL, "colo", "state"],
    )
    fetch_error = GaugeMetricFamily(
        "tunneltop_tunnel_fetch_error",
        "1 when the last read of the tunnel's connections failed (the connections shown are older, or unknown).",
        labels=TUNNEL,
    )
    remote_config = GaugeMetricFamily(
        "tunneltop_tunnel_remote_config_version",
        "Version of the tunnel's remote (dashboard-managed) configuration, when it is remotely managed.",
        labels=TUNNEL,
    )
    findings = GaugeMetricFamily(
        "tunneltop_tunnel_findings",
        "tunneltop's findings about the tunnel (checks beyond the API's status) by check and severity.",
        labels=[*TUNNEL, "check", "severity"],
    )
    info = InfoMetricFamily(
        "tunneltop_connector", "A cloudflared connector: its version and architecture.", labels=[*CONNECTOR]
    )
    config_version = GaugeMetricFamily(
        "tunneltop_connector_config_version",
        "Configuration version the connector runs (compare with tunneltop_tunnel_remote_config_version).",
        labels=CONNECTOR,
    )
    started = GaugeMetricFamily(
        "tunneltop_connector_start_time_seconds",
        "When the connector (cloudflared) started, Unix time.",
        labels=CONNECTOR,
    )
    for state in tunnels:
        labels = _tunnel_labels(state)
        health.add_metric(labels, {h: state.health.value == h for h in HEALTH_STATES})
        fetch_error.add_metric(labels, 1.0 if state.error is not None else 0.0)
        if state.reach is not None and state.reach.config_version is not None:
            remote_config.add_metric(labels, float(state.reach.config_version))
        found: dict[tuple[str, str], int] = {}
        for finding in state.findings:
            key = (clean(finding.check, 64), finding.severity.value)
            found[key] = found.get(key, 0) + 1
        for (check, severity), count in sorted(found.items()):
            findings.add_metric([*labels, check, severity], float(count))
        if state.connectors is None:
            continue
        connectors.add_metric(labels, float(len(state.connectors)))
        by_colo: dict[tuple[str, str], int] = {}  # plain loops: at 10,000 connections they beat Counter's
        for connector in state.connectors:
            ids = [*labels, clean(connector.id, 64)]
            info.add_metric(ids, {"version": clean(connector.version, 64), "arch": clean(connector.arch, 64)})
            if connector.config_version is not None:
                config_version.add_metric(ids, float(connector.config_version))
            if connector.run_at is not None:
                started.add_metric(ids, connector.run_at.timestamp())
            for conn in connector.conns:
                key = (conn.colo_name or "unknown", conn.state)
                by_colo[key] = by_colo.get(key, 0) + 1
        for (colo, conn_state), count in sorted(by_colo.items()):
            connections.add_metric([*labels, clean(colo, 32), conn_state], float(count))
    return [health, connectors, connections, fetch_error, remote_config, findings, info, config_version, started]


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class _TunnelsCollector(Collector):
    def __init__(self, tunnels: tuple[TunnelState, ...]) -> None:
        self.tunnels = tunnels

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from _tunnel_families(self.tunnels)


class ServeCollector(Collector):
    """What changes with time and with the poller rather than with the tunnels: ages, polls, the API's figures."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not run a scrape

    def collect(self) -> Iterator[Metric]:
        poller = self.poller
        now = utc_now()
        yield InfoMetricFamily(
            "tunneltop_build", "The tunneltop serving these metrics.", value={"version": __version__}
        )
        snapshot = poller.snapshot
        if snapshot is not None:
            age = GaugeMetricFamily(
                "tunneltop_tunnel_data_age_seconds",
                "Age of the tunnel's data: since its connections were last read (or its list entry, when they "
                "were not read yet).",
                labels=TUNNEL,
            )
            for state in snapshot.tunnels:
                read = state.fetched_at or snapshot.fetched_at
                age.add_metric(_tunnel_labels(state), max(0.0, (now - read).total_seconds()))
            yield age
            yield GaugeMetricFamily(
                "tunneltop_data_age_seconds",
                "Seconds since the last successful poll's snapshot was taken.",
                value=max(0.0, (now - snapshot.fetched_at).total_seconds()),
            )
        if poller.last_success is not None:
            yield GaugeMetricFamily(
                "tunneltop_last_success_timestamp_seconds",
                "When the last successful poll's snapshot was taken, Unix time.",
                value=_seconds(poller.last_success),
            )
        yield from self._poller_families()
        yield from self._api_families()

    def _poller_families(self) -> Iterator[Metric]:
        poller = self.poller
        polls = CounterMetricFamily(
            "tunneltop_polls", "Polls by result: ok, failed, holding (waiting for the request budget), crashed.",
            labels=["result"],
        )
        for result in ("ok", "failed", "holding", "crashed"):
            polls.add_metric([result], float(poller.results[result]))
        yield polls
        errors = CounterMetricFamily(
            "tunneltop_poll_errors", "Failed polls by kind of error (crash: an internal error).", labels=["kind"]
        )
        for kind, count in sorted(poller.errors.items()):
            errors.add_metric([kind], float(count))
        yield errors
        yield SummaryMetricFamily(
            "tunneltop_poll_duration_seconds",
            "Time each poll took (its requests to Cloudflare, within the budget).",
            count_value=poller.polls,
            sum_value=poller.duration_total,
        )
        if poller.last_duration is not None:
            yield GaugeMetricFamily(
                "tunneltop_last_poll_duration_seconds", "Time the last poll took.", value=poller.last_duration
            )
        healthy, _ = poller.health()
        yield GaugeMetricFamily(
            "tunneltop_healthy", "1 while the poller is healthy (as /healthz says): its last success is recent.",
            value=1.0 if healthy else 0.0,
        )
        if poller.recording is not None:  # serve --record
            yield GaugeMetricFamily(
                "tunneltop_recording",
                "1 while --record records every poll; 0 once the recording stopped (see stderr).",
                value=1.0 if poller.recording else 0.0,
            )
            yield CounterMetricFamily(
                "tunneltop_recorded_polls", "Polls written to the --record file.", value=float(poller.recorded)
            )

    def _api_families(self) -> Iterator[Metric]:
        poller = self.poller
        client = poller.client
        if client is not None:
            stats = client.stats
            yield CounterMetricFamily(
                "tunneltop_api_requests", "HTTP requests sent to the Cloudflare API (each page and retry).",
                value=stats.requests,
            )
            yield CounterMetricFamily("tunneltop_api_retries", "Requests retried after a passing failure.",
                                      value=stats.retries)
            errors = CounterMetricFamily(
                "tunneltop_api_errors", "Failed requests to the Cloudflare API by kind of error.", labels=["kind"]
            )
            kinds: Counter[str] = Counter()
            for name, count in stats.errors.items():
                kinds[kind_name(name)] += count
            for kind, count in sorted(kinds.items()):
                errors.add_metric([kind], float(count))
            yield errors
        engine = poller.engine
        if engine is None:
            return
        status = engine.status
        yield GaugeMetricFamily(
            "tunneltop_api_budget_used_per_minute",
            "Requests to Cloudflare in the last minute, by every tunneltop process sharing this credential.",
            value=status.used_per_minute,
        )
        yield GaugeMetricFamily(
            "tunneltop_api_budget_allowed_per_minute", "Requests per minute tunneltop allows itself (--budget).",
            value=status.limit_per_minute,
        )
        yield GaugeMetricFamily(
            "tunneltop_api_blocked_seconds", "Seconds until Cloudflare's rate limit (a 429) lets requests go again.",
            value=status.blocked_for,
        )
        yield GaugeMetricFamily(
            "tunneltop_api_processes", "tunneltop processes sharing this credential's budget on this host.",
            value=status.processes,
        )
        yield GaugeMetricFamily(
            "tunneltop_api_deferred_fetches", "Due connection reads the last poll left for later (budget).",
            value=status.deferred,
        )
        yield GaugeMetricFamily(
            "tunneltop_effective_interval_seconds",
            "Seconds between two refreshes of what is watched (the interval, or longer when the budget says so).",
            value=engine.effective_interval,
        )


def _render_tunnels(tunnels: tuple[TunnelState, ...]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)  # one of its own, never prometheus_client's global one
    registry.register(_TunnelsCollector(tunnels))
    return generate_latest(registry)


class MetricsPage:
    """The body of ``/metrics``, in Prometheus' text format (version 0.0.4), every part of it rendered by
    ``prometheus_client``: the tunnels' series once per tunnels tuple (the engine hands back the very same tuple when
    nothing changed), off the event loop (they only read immutable states), then served as rendered; the live ones
    at every scrape."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self._live = CollectorRegistry(auto_describe=False)
        self._live.register(ServeCollector(poller))
        self._tunnels: tuple[tuple[TunnelState, ...], bytes] | None = None
        self._building = asyncio.Lock()  # concurrent scrapes after a poll wait for one rendering

    async def _tunnels_part(self, tunnels: tuple[TunnelState, ...]) -> bytes:
        async with self._building:
            cached = self._tunnels
            if cached is None or cached[0] is not tunnels:
                cached = (tunnels, await asyncio.to_thread(_render_tunnels, tunnels))
                self._tunnels = cached
            return cached[1]

    async def render(self) -> bytes:
        snapshot = self.poller.snapshot
        tunnels = b"" if snapshot is None else await self._tunnels_part(snapshot.tunnels)
        return generate_latest(self._live) + tunnels
