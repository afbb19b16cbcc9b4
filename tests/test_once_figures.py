"""What ``--once`` works out over every connection, read at C speed: the same verdicts and figures as the plain
definitions they stand for, over fleets of every shape (pending, unknown and active connections, old and new
releases, critical and warning findings)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from tunneltop.model import Connection, Connector, Snapshot, Tunnel, TunnelState
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import Health, tunnel_health, worst_severity
from tunneltop.model.rules import FindingRules, tunnel_findings
from tunneltop.report import render_table
from tunneltop.sanitize import clean

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
VERSIONS = ("2024.1.0", "2026.10.0", "DEV", None, "2025.2.7")


def fleet(rng: random.Random, size: int) -> tuple[Connector, ...]:
    flags = (True, False, False, False, None)
    return tuple(
        Connector(
            id=f"k{n}",
            version=rng.choice(VERSIONS),
            conns=[
                Connection(id=f"k{n}-{i}", colo_name=rng.choice(("DFW", "LAX", None)), is_pending_reconnect=flag)
                for i in range(rng.randrange(0, 5))
                for flag in [rng.choice(flags)]
            ],
        )
        for n in range(size)
    )


def plain_health(status: str, connectors: tuple[Connector, ...]) -> Health:
    """The verdict as model/health.py defines it, connection by connection."""
    if not connectors:
        return Health.INACTIVE if status == "inactive" else Health.DOWN
    conns = [conn for c in connectors for conn in c.conns]
    if any(c.is_pending_reconnect is True for c in conns) or status == "degraded":
        return Health.DEGRADED
    if any(c.is_pending_reconnect is False for c in conns):
        return Health.HEALTHY
    if conns:
        return Health.HEALTHY if status == "healthy" else Health.UNKNOWN
    return Health.DOWN


def plain_worst(findings: tuple[Finding, ...]) -> Severity | None:
    if any(f.severity is Severity.CRITICAL for f in findings):
        return Severity.CRITICAL
    return Severity.WARNING if findings else None


@pytest.mark.parametrize("seed", range(40))
def test_health_is_the_plain_verdict(seed: int) -> None:
    rng = random.Random(seed)
    connectors = fleet(rng, rng.randrange(0, 6))
    status = rng.choice(("healthy", "degraded", "down", "inactive", "weird"))
    assert tunnel_health(Tunnel(id="t", status=status), connectors) is plain_health(status, connectors)


@pytest.mark.parametrize("seed", range(20))
def test_worst_severity_is_the_plain_one(seed: int) -> None:
    rng = random.Random(seed)
    findings = tuple(
        Finding("x", rng.choice((Severity.WARNING, Severity.CRITICAL)), "m", "h") for _ in range(rng.randrange(0, 4))
    )
    assert worst_severity(findings) is plain_worst(findings)
    assert worst_severity(iter(findings)) is plain_worst(findings)


@pytest.mark.parametrize("seed", range(20))
def test_a_state_with_findings_has_the_figures_of_one_worked_out_afresh(seed: int) -> None:
    rng = random.Random(seed)
    connectors = fleet(rng, rng.randrange(1, 8))
    state = TunnelState(Tunnel(id="t", name="web", status="healthy"), connectors)
    after = FindingRules().apply(Snapshot("acc", NOW, (state,))).tunnels[0]
    fresh = TunnelState(state.tunnel, connectors, findings=after.findings)
    assert after.findings == tunnel_findings(fresh, now=NOW)
    assert (after.health, after.active_count, after.pending_count) == (
        fresh.health,
        fresh.active_count,
        fresh.pending_count,
    )
    assert (after.rank, after.status) == (fresh.rank, fresh.status)


def test_old_releases_are_found_per_connector_in_the_fleets_order() -> None:
    connectors = fleet(random.Random(7), 30)
    state = TunnelState(Tunnel(id="t", name="web", status="healthy"), connectors)
    old = [f for f in tunnel_findings(state, now=NOW) if f.check == "old_release"]
    expected = [c.id for c in connectors if c.version in ("2024.1.0", "2025.2.7")]
    assert [f.connector_id for f in old] == expected
    assert all(f.severity is Severity.WARNING for f in old)
    assert old[0].message.startswith(f"connector {expected[0]} runs cloudflared ")


def test_the_table_says_each_finding_and_its_hint_as_the_plain_format_does() -> None:
    connectors = fleet(random.Random(3), 12)
    state = TunnelState(Tunnel(id="t", name="web", status="healthy"), connectors)
    after = FindingRules().apply(Snapshot("acc", NOW, (state,)))
    findings = after.tunnels[0].findings
    assert len({f.check for f in findings}) > 1 and len(findings) > len({f.hint for f in findings})
    plain = [
        line
        for f in findings
        for line in (f"  {f.severity.name} {f.check}: {clean(f.message, 300)}", f"    hint: {clean(f.hint, 300)}")
    ]
    lines = render_table(after, NOW).splitlines()
    first = lines.index(plain[0])
    assert lines[first : first + len(plain)] == plain
    header = next(line for line in lines if line.startswith("  CONNECTOR"))
    rows = [line for line in lines if line.startswith("  k")]
    assert [row.split()[0] for row in rows] == [c.id for c in connectors]
    column = header.index("VERSION")  # every row's version starts under its heading
    assert all(row[column:].startswith(c.version or "-") for row, c in zip(rows, connectors, strict=True))
