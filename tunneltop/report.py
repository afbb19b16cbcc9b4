"""The headless output of ``tunneltop --once``: a monitoring plugin's status line and a plain-text table, or a JSON
document, and the exit status.

Monitoring-plugin exit codes (Nagios plugin guidelines; model/health.py ``Status``): 0 OK (healthy or inactive,
nothing found), 1 WARNING (a tunnel degraded, or a warning finding), 2 CRITICAL (a tunnel down, or a critical
finding: an inactive tunnel only when required), 3 UNKNOWN (a tunnel's state unknown; also a usage error of
``--once``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

from pydantic_core import PydanticSerializationError

from tunneltop import jsonout
from tunneltop.api.gate import BudgetStatus
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import Health, Status, edge_summary, format_age, origin_ips, pending_conns
from tunneltop.model.records import Connector
from tunneltop.model.rules import CHECK_TITLES
from tunneltop.model.snapshot import Snapshot, TunnelState, client_json
from tunneltop.sanitize import clean

EXIT_OK = 0
EXIT_DEGRADED = 1  # WARNING
EXIT_DOWN = 2  # CRITICAL
EXIT_UNKNOWN = 3
EXIT_USAGE = 64  # --watch and the live view; a usage error of --once is UNKNOWN, as monitoring plugins say

COLUMNS = ("CONNECTOR", "STARTED", "UPTIME", "ARCH", "VERSION", "CONFIG", "ORIGIN IP", "EDGE", "PENDING")


def exit_status(snapshot: Snapshot) -> int:
    return snapshot.status.exit_code


# Tunnels the status line names before "and N more": the line must stay one short line.
STATUS_NAMES = 3


def failure_line(message: str) -> str:
    """The status line of a --once that has no snapshot to report on: UNKNOWN and why (the details go to stderr).
    A monitoring plugin says something on stdout whatever happens."""
    return f"TUNNELTOP UNKNOWN - {clean(message, 200).replace('|', '/')}"


def _reason(state: TunnelState) -> str:
    """A few words on why a tunnel is not OK: its health unless healthy, then its findings' titles."""
    words = [] if state.health in (Health.HEALTHY, Health.INACTIVE) else [state.health.value]
    titles = list(dict.fromkeys(CHECK_TITLES.get(f.check, f.check) for f in state.findings))
    words += titles[:2]
    if len(titles) > 2:
        words.append(f"+{len(titles) - 2} more")
    return ", ".join(words)


def _plugin_text(text: str) -> str:
    # '|' starts the performance data: never inside the text part.
    return clean(text, 60).replace("|", "/")


def status_line(snapshot: Snapshot) -> str:
    """The monitoring plugin's first line: ``TUNNELTOP STATUS - text | perfdata`` (Nagios plugin guidelines)."""
    figures = snapshot.figures
    status = figures.status
    tunnels = snapshot.tunnels
    if status is Status.OK:
        parts = [f"{n} {h.value}" for h in (Health.HEALTHY, Health.INACTIVE) if (n := figures.counts.get(h, 0))]
        text = f"{len(tunnels)} tunnels: {', '.join(parts)}" if tunnels else "no tunnels"
    else:
        bad = sorted(
            (t for t in tunnels if t.status is not Status.OK), key=lambda t: (t.rank, (t.tunnel.name or "").casefold())
        )
        named = [f"{_plugin_text(t.tunnel.label)} {_reason(t)}" for t in bad[:STATUS_NAMES]]
        if len(bad) > STATUS_NAMES:
            named.append(f"and {len(bad) - STATUS_NAMES} more")
        text = f"{len(bad)} of {len(tunnels)} tunnels need attention: {'; '.join(named)}"
    counts = figures.counts
    perf = {
        "tunnels": len(tunnels),
        **{h.value: counts.get(h, 0) for h in (Health.HEALTHY, Health.DEGRADED, Health.DOWN, Health.INACTIVE)},
        "unknown": counts.get(Health.UNKNOWN, 0),
        "warnings": figures.warnings,
        "critical": figures.critical,
        "connections": sum(t.active_count for t in tunnels),
        "pending": figures.pending,
    }
    return f"TUNNELTOP {status.name} - {text} | " + " ".join(f"{k}={v}" for k, v in perf.items())


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    # Each column's width and each row's line at C speed (a line per connector: 25,000 at 100,000 connections).
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths).format  # "<w" pads a str as ljust(w) does
    return [line(*row).rstrip() for row in rows]


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
        rows: list[Sequence[str]] = [COLUMNS]
        for c in state.connectors:
            rows.append(
                (
                    clean(c.id, 36),
                    _time(c.run_at),
                    format_age(now - c.run_at) if c.run_at else "-",
                    clean(c.arch, 24),
                    clean(c.version, 24),
                    clean(c.config_version),
                    clean(", ".join(origin_ips(c)) or None, 80),
                    clean(edge_summary(c.conns) or None, 80),
                    str(len(pending_conns(c))),
                )
            )
        lines.extend("  " + line for line in _table(rows))
    lines.extend(f"  problem: {clean(str(p), 300)}" for p in state.problems)
    # A fleet's findings share their severity, check and hint (an old_release per connector): each said once.
    heads: dict[tuple[Severity, str], str] = {}
    hints: dict[str, str] = {}
    for f in state.findings:
        said = heads.get((f.severity, f.check))
        if said is None:
            said = heads[f.severity, f.check] = f"  {f.severity.name} {f.check}: "
        hint = hints.get(f.hint)
        if hint is None:
            hint = hints[f.hint] = f"    hint: {clean(f.hint, 300)}"
        lines.append(said + clean(f.message, 300))
        lines.append(hint)
    reach = state.reach
    if reach is not None:
        if reach.managed == "local":
            lines.append("  hostnames: locally managed (in the config file on the connector's host)")
        elif reach.hostnames:
            lines.append(f"  hostnames: {clean(', '.join(reach.hostnames), 600)}")
        if reach.routes:
            routes = (f"{r.network} ({r.virtual_network})" if r.virtual_network else r.network for r in reach.routes)
            lines.append(f"  routes: {clean(', '.join(routes), 600)}")
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
    lines = [status_line(snapshot), title, fetched, ""]
    if not snapshot.tunnels:
        lines.append("no tunnels")
    skipped = set(not_fetched)
    for state in snapshot.tunnels:
        lines.extend(_tunnel_lines(state, now, state.tunnel.id in skipped))
        lines.append("")
    lines.extend(f"problem: {clean(str(p), 300)}" for p in snapshot.problems)
    return "\n".join(lines).rstrip() + "\n"


def _client_lines() -> Callable[[Connector, str | None], Any]:
    """What writes a connector's line of the document as pydantic's serializer writes it, in one call of its own
    (Rust), rather than its record made Python dicts and those encoded again: the same JSON value, as ``api_dict``
    is the same serializer's output as Python objects (NaN and infinities null in both). A string JSON cannot carry
    (a lone surrogate) fails it: then the record as ``client_json`` makes it, encoded as the rest of the document
    is."""
    # The serializer called as model_dump_json calls it, less that method's keyword handling per connector (its
    # warnings are on by default), looked up once for the document (through BaseModel's __getattr__ per connector).
    to_json = Connector.__pydantic_serializer__.to_json

    def line(connector: Connector, this_host: str | None) -> Any:
        try:
            data = to_json(connector)
            if not data.isascii():  # rare, and slower to ask for every time
                data = to_json(connector, ensure_ascii=True)
        except PydanticSerializationError:
            return client_json(connector, this_host)
        if this_host is not None and connector.id == this_host:
            data = data[:-1] + b',"this_host":true}'
        return data  # its bytes, as they are: jsonout puts them in so

    return line


def _finding_lines() -> Callable[[Finding], bytes]:
    """What writes a finding's line of the document, ``Finding.to_json`` written out in one format (its strings by
    json's C escaper), rather than a dict per finding encoded by a call of the encoder each: a fleet on an old
    cloudflared has a finding per connector. The text around the message and connector, which such a fleet's
    findings share (check, severity, hint), is made once per kind (for one document): each line escapes only its
    message and connector id. tests/test_report.py holds it to ``Finding.to_json``'s value."""
    quoted = encode_basestring_ascii
    around: dict[tuple[str, str, str], tuple[str, str]] = {}  # (check, severity, hint) -> the text around the rest

    def line(finding: Finding) -> bytes:
        kind = (finding.check, finding.severity, finding.hint)
        parts = around.get(kind)
        if parts is None:
            check, severity, hint = map(quoted, kind)
            parts = around[kind] = (
                f'{{"check": {check}, "severity": {severity}, "message": ',
                f', "hint": {hint}, "connector_id": ',
            )
        about = finding.connector_id
        # Bytes (ASCII: each part escaped), which jsonout puts in as they are, with no object around them.
        text = f"{parts[0]}{quoted(finding.message)}{parts[1]}{'null' if about is None else quoted(about)}}}"
        return text.encode("ascii")

    return line


def _document(
    snapshot: Snapshot, demo: bool, not_fetched: Sequence[str], budget: BudgetStatus | None
) -> dict[str, Any]:
    document = snapshot.to_json(_client_lines(), _finding_lines())
    # The monitoring verdict over every tunnel, as --once's exit status gives it: ok, warning, critical, unknown.
    document["status"] = snapshot.status.value
    # Tunnels whose connections this run's budget left unread ("clients": null, "error": null there).
    document["not_fetched"] = list(not_fetched)
    if budget is not None:
        document["api"] = budget.to_json()
    if demo:
        document = {"demo": True, **document}
    return document


def render_json(
    snapshot: Snapshot, *, demo: bool = False, not_fetched: Sequence[str] = (), budget: BudgetStatus | None = None
) -> str:
    # ensure_ascii: control and bidi characters arrive escaped, never raw, at whatever reads this.
    return jsonout.dumps(_document(snapshot, demo, not_fetched, budget)) + "\n"  # indented, a connector a line


def write_json(
    stream: TextIO,
    snapshot: Snapshot,
    *,
    demo: bool = False,
    not_fetched: Sequence[str] = (),
    budget: BudgetStatus | None = None,
) -> None:
    """``render_json``'s text written to ``stream`` a piece at a time (jsonout.write), never whole."""
    jsonout.write(_document(snapshot, demo, not_fetched, budget), stream)
    stream.write("\n")
