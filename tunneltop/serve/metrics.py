"""``/metrics``: a Prometheus collector over the poller's latest snapshot, built at scrape time through
``prometheus_client`` (never hand-written text). A scrape reads what the last poll kept: it sends no request to
Cloudflare.

Labels, and only where they belong: ``tunnel_id`` and ``tunnel_name`` on every per-tunnel series, ``connector_id``
on per-connector ones, ``colo`` and ``state`` on connection counts, ``version`` (cloudflared's) on the connector
info, ``check`` and ``severity`` on findings, ``kind`` on errors. Never a connection id: connections are counted, so
the number of series grows with tunnels and connectors, not with connections.

The series that only change with the snapshot are built once per snapshot and served again until the next one
(a scrape at 10,000 connections then costs the text rendering alone); ages and the poller's own figures are
worked out at each scrape.
"""

from __future__ import annotations

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
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tunneltop import __version__
from tunneltop.model.health import Health
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.account import utc_now
from tunneltop.sanitize import clean
from tunneltop.serve.poller import Poller, kind_name

TUNNEL = ["tunnel_id", "tunnel_name"]
CONNECTOR = [*TUNNEL, "connector_id"]
HEALTH_STATES = tuple(h.value for h in Health)
CONNECTION_STATES = ("active", "pending", "unknown")


def _tunnel_labels(state: TunnelState) -> list[str]:
    # API text: made printable (the exposition format escapes quotes, backslashes and newlines, not the rest).
    return [clean(state.tunnel.id, 64), clean(state.tunnel.name, 200) if state.tunnel.name else ""]


def _snapshot_families(snapshot: Snapshot) -> list[Metric]:
    """The series that follow from the snapshot alone."""
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
    conn_counts = GaugeMetricFamily(
        "tunneltop_connector_connections",
        "Edge connections of the connector by state (active, pending reconnect, unknown).",
        labels=[*CONNECTOR, "state"],
    )
    for state in snapshot.tunnels:
        labels = _tunnel_labels(state)
        health.add_metric(labels, {h: state.health.value == h for h in HEALTH_STATES})
        fetch_error.add_metric(labels, 1.0 if state.error is not None else 0.0)
        if state.reach is not None and state.reach.config_version is not None:
            remote_config.add_metric(labels, float(state.reach.config_version))
        for (check, severity), count in sorted(Counter((f.check, f.severity.value) for f in state.findings).items()):
            findings.add_metric([*labels, clean(check, 64), severity], float(count))
        if state.connectors is None:
            continue
        connectors.add_metric(labels, float(len(state.connectors)))
        by_colo: Counter[tuple[str, str]] = Counter()
        for connector in state.connectors:
            ids = [*labels, clean(connector.id, 64)]
            info.add_metric(ids, {"version": clean(connector.version, 64), "arch": clean(connector.arch, 64)})
            if connector.config_version is not None:
                config_version.add_metric(ids, float(connector.config_version))
            if connector.run_at is not None:
                started.add_metric(ids, connector.run_at.timestamp())
            states = Counter(conn.state for conn in connector.conns)
            for conn_state in CONNECTION_STATES:
                conn_counts.add_metric([*ids, conn_state], float(states[conn_state]))
            by_colo.update((conn.colo_name or "unknown", conn.state) for conn in connector.conns)
        for (colo, conn_state), count in sorted(by_colo.items()):
            connections.add_metric([*labels, clean(colo, 32), conn_state], float(count))
    return [health, connectors, connections, fetch_error, remote_config, findings, info, config_version, started,
            conn_counts]


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class ServeCollector(Collector):
    """The metrics of one ``tunneltop serve``, read from its ``Poller`` at each scrape."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self._built: tuple[Snapshot, list[Metric]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # the names depend on nothing but this module; registering must not run a scrape

    def _families(self, snapshot: Snapshot) -> list[Metric]:
        built = self._built
        if built is None or built[0] is not snapshot:
            built = (snapshot, _snapshot_families(snapshot))
            self._built = built
        return built[1]

    def collect(self) -> Iterator[Metric]:
        poller = self.poller
        now = utc_now()
        yield InfoMetricFamily(
            "tunneltop_build", "The tunneltop serving these metrics.", value={"version": __version__}
        )
        snapshot = poller.snapshot
        if snapshot is not None:
            yield from self._families(snapshot)
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


def registry(poller: Poller) -> CollectorRegistry:
    """A registry of its own (never prometheus_client's global one) holding this server's collector only."""
    own = CollectorRegistry(auto_describe=False)
    own.register(ServeCollector(poller))
    return own
