"""The headless output of ``tunneltop --once``: a plain-text table or a JSON document, and the exit status.

Monitoring-plugin exit codes: 0 every tunnel healthy, 1 any degraded, 2 any down or inactive or without
connectors, 3 state unknown.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime

from tunneltop.api.gate import BudgetStatus
from tunneltop.model.health import Health, edge_summary, format_age, origin_ips, pending_conns
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.sanitize import clean

EXIT_OK = 0
EXIT_DEGRADED = 1
EXIT_DOWN = 2
EXIT_UNKNOWN = 3
EXIT_USAGE = 64

COLUMNS = ("CONNECTOR", "STARTED", "UPTIME", "ARCH", "VERSION", "CONFIG", "ORIGIN IP", "EDGE", "PENDING")


def exit_status(snapshot: Snapshot) -> int:
    healths = {t.health for t in snapshot.tunnels}
    if Health.UNKNOWN in healths:
        return EXIT_UNKNOWN
    if healths & {Health.DOWN, Health.INACTIVE}:
        return EXIT_DOWN
    if Health.DEGRADED in healths:
        return EXIT_DEGRADED
    return EXIT_OK


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


NOT_FETCHED = (
    "connections not fetched: beyond this run's share of the request budget; health is the tunnel list's status "
    "(name the tunnel, or raise --budget)"
)


def _tunnel_lines(state: TunnelState, now: datetime, not_fetched: bool = False) -> list[str]:
    t = state.tunnel
    head = (
        f"{clean(t.name, 80)}  {clean(t.id, 40)}  status={clean(t.status, 20)}  health={state.health.value}"
        f"  active={state.active_count}  pending={state.pending_count}"
    )
    lines = [head]
    if not_fetched:
        lines.append(f"  {NOT_FETCHED}")
    if state.error:
        lines.append(f"  error: {clean(state.error, 300)}")
    if state.connectors is not None and not state.connectors:
        lines.append("  no connectors")
    if state.connectors:
        rows: list[list[str]] = [list(COLUMNS)]
        for c in state.connectors:
            rows.append(
                [
                    clean(c.id, 36),
                    _time(c.run_at),
                    format_age(now - c.run_at) if c.run_at else "-",
                    clean(c.arch, 24),
                    clean(c.version, 24),
                    clean(c.config_version),
                    clean(", ".join(origin_ips(c)) or None, 80),
                    clean(edge_summary(c.conns) or None, 80),
                    str(len(pending_conns(c))),
                ]
            )
        lines.extend("  " + line for line in _table(rows))
    lines.extend(f"  problem: {clean(str(p), 300)}" for p in state.problems)
    return lines


def render_table(
    snapshot: Snapshot,
    now: datetime,
    *,
    demo: bool = False,
    not_fetched: Collection[str] = (),
    budget: BudgetStatus | None = None,
) -> str:
    title = f"account {clean(snapshot.account_id, 40)}"
    if snapshot.account_name:
        title += f" ({clean(snapshot.account_name, 80)})"
    if demo:
        title = "DEMO (simulated account) - " + title
    fetched = f"fetched {_time(snapshot.fetched_at)}"
    if budget is not None:
        fetched += f"  ({budget})"
    lines = [title, fetched, ""]
    if not snapshot.tunnels:
        lines.append("no tunnels")
    skipped = set(not_fetched)
    for state in snapshot.tunnels:
        lines.extend(_tunnel_lines(state, now, state.tunnel.id in skipped))
        lines.append("")
    lines.extend(f"problem: {clean(str(p), 300)}" for p in snapshot.problems)
    return "\n".join(lines).rstrip() + "\n"


def render_json(
    snapshot: Snapshot, *, demo: bool = False, not_fetched: Sequence[str] = (), budget: BudgetStatus | None = None
) -> str:
    document = snapshot.to_json()
    # Tunnels whose connections this run's budget left unread ("clients": null, "error": null there).
    document["not_fetched"] = list(not_fetched)
    if budget is not None:
        document["api"] = budget.to_json()
    if demo:
        document = {"demo": True, **document}
    # ensure_ascii: control and bidi characters arrive escaped, never raw, at whatever reads this.
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"
