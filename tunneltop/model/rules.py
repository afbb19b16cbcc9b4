"""The rules: what tunneltop finds wrong with a tunnel beyond the API's status, each finding with its numbers and a
hint. Built-in checks run with no configuration; the config file's ``[expect]`` (model/expect.py) sets or tunes
the rest.

Checks (ids as findings, events and ``ignore`` name them) and their severity:
- ``required`` (critical): a tunnel that must run (``required = true``) is inactive.
- ``min_connectors``, ``min_colos``, ``min_active_per_connector``, ``max_versions`` (the table's ``severity``,
  warning by default): fewer connectors / colos / active connections per connector than expected, more versions.
  Built in: at least 2 colos ("all connections in one colo") and 4 active connections per connector.
- ``origin_ips``, ``colos`` (critical): a connector connecting from outside the expected networks, a connection
  landing in a colo outside the allowed ones.
- ``config_drift`` (warning): a connector runs an older configuration version than the tunnel's remote one.
- ``old_release`` (warning): cloudflared more than a year older than today (its version is its release date,
  ``2025.8.1`` is August 2025; Cloudflare supports releases within a year). A version that is no date: no finding.
- ``pending_reconnect`` (warning): connections pending a reconnect for longer than ``PENDING_TOO_LONG``.
- ``local_ready`` (critical when the local cloudflared says 0 ready while the API lists active connections, else
  warning): cloudflared's ``/ready`` on this host disagrees with the API about its connector.

An inactive tunnel (created, never run) gets no finding unless it is required: it is neutral. A tunnel whose
connections are unknown (not fetched, or failed) gets none either: nothing to judge.

One module (over ~400 lines) so that every check's id, severity, message and hint are read side by side.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import chain, compress

from tunneltop.model.expect import BUILT_IN, Expectations, TunnelExpect
from tunneltop.model.findings import Finding, Severity, made
from tunneltop.model.health import Health
from tunneltop.model.reach import LocalReady
from tunneltop.model.records import Connection, Connector
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects
from tunneltop.sanitize import clean

# cloudflared retries a lost connection with a backoff of at most about a minute; one still pending after three
# has stopped coming back by itself.
PENDING_TOO_LONG = timedelta(minutes=3)
# Cloudflare supports cloudflared releases within one year (cloudflared's README).
SUPPORTED_MONTHS = 12

# A few words per check, for one-line summaries (the plugin status line): the finding's message has the numbers.
CHECK_TITLES = {
    "required": "required but inactive",
    "min_connectors": "too few connectors",
    "min_colos": "too few colos",
    "min_active_per_connector": "too few connections",
    "max_versions": "mixed versions",
    "origin_ips": "unexpected origin IP",
    "colos": "unexpected colo",
    "config_drift": "config drift",
    "old_release": "old cloudflared",
    "pending_reconnect": "stuck reconnect",
    "local_ready": "local cloudflared disagrees",
}

_RELEASE = re.compile(r"^(\d{4})\.(\d{1,2})\.\d+")

# (tunnel id, connector id, connection id) -> when that connection was first seen pending
PendingSince = Mapping[tuple[str, str, str], datetime]

_PENDING = operator.attrgetter("is_pending_reconnect")
_CONNS = operator.attrgetter("conns")
_COLO = operator.attrgetter("colo_name")
_VERSION = operator.attrgetter("version")
_ID = operator.attrgetter("id")
_SEVERITY = operator.attrgetter("severity")
_OLD_RELEASE_HINT = "Cloudflare supports cloudflared releases within one year: upgrade it"


def short_id(value: str) -> str:
    head = value[:8]
    return head if head.isprintable() else clean(head, 8)


def release_month(version: str | None) -> tuple[int, int] | None:
    """(year, month) a cloudflared version was released, from its number; None when it is no date."""
    match = _RELEASE.match(version or "")
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    return (year, month) if 1 <= month <= 12 else None


def tunnel_findings(
    state: TunnelState,
    expect: TunnelExpect = BUILT_IN,
    now: datetime | None = None,
    local: LocalReady | None = None,
    pending_since: PendingSince | None = None,
    *,
    reuse: FleetFindings | None = None,
) -> tuple[Finding, ...]:
    """Every finding about one tunnel, critical first. ``now``: today, for release ages and pending times (default:
    no age-based finding); ``local``: cloudflared's ``/ready`` on this host; ``pending_since``: when each pending
    connection was first seen pending (kept across polls by ``FindingRules``); ``reuse``: the tunnel's per-connector
    findings of the last time, handed back where they say the same (``FindingRules`` keeps them)."""
    if state.health is Health.INACTIVE:
        if expect.required and expect.checks("required"):
            return (
                Finding(
                    "required",
                    Severity.CRITICAL,
                    "inactive (never run), but required to run",
                    "start cloudflared for it (cloudflared tunnel run NAME) or drop required from its [expect]",
                ),
            )
        return ()
    connectors = state.connectors
    if connectors is None:
        return ()
    found: list[Finding] = []
    _capacity(state, connectors, expect, found)
    _placement(connectors, expect, found)
    _versions(state, connectors, expect, now, found, reuse)
    if now is not None and pending_since and state.pending_count and expect.checks("pending_reconnect"):
        _pending(state, connectors, now, pending_since, found)
    if local is not None and expect.checks("local_ready"):
        _local(connectors, local, found)
    # Critical first, each severity in the order found (a stable partition, by identity: a sort keyed on the
    # severity hashed an enum member in Python per finding, one finding per connector on an old cloudflared). Asked
    # first of all of them at once, at C speed: usually none is, or all are.
    severities = list(map(_SEVERITY, found))
    if Severity.CRITICAL in severities and Severity.WARNING in severities:
        critical = [f for f in found if f.severity is Severity.CRITICAL]
        found = critical + [f for f in found if f.severity is not Severity.CRITICAL]
    return tuple(found)


def _known(connector: Connector) -> bool:
    """Whether every connection says whether it is active (a drifting API may leave it out: then no count)."""
    return None not in map(_PENDING, connector.conns)


def _counted(
    connectors: tuple[Connector, ...], active_count: int | None = None
) -> tuple[list[Connector], list[int], list[Connection]]:
    """The connectors counted (each of whose connections says whether it is active), how many active connections
    each of them has, and those connections. ``active_count``: how many are active, where the caller knows (a
    TunnelState counts them): then every connection read once less when all of them are (at 100,000 connections,
    a read of each is 100,000 records' lookups)."""
    every = list(chain.from_iterable(map(_CONNS, connectors)))
    if active_count is None or active_count < len(every):
        flags = list(map(_PENDING, every))  # True, False or None (StrictBool): only False equals False among them
        active_count = flags.count(False)
    if active_count == len(every):  # every connection active, the usual fleet: all of them at C speed
        return list(connectors), list(map(len, map(_CONNS, connectors))), every
    per = [list(map(_PENDING, c.conns)) for c in connectors]
    known = [None not in f for f in per]
    counted, counted_flags = list(compress(connectors, known)), list(compress(per, known))
    active = [
        conn for c, f in zip(counted, counted_flags, strict=True) for conn in compress(c.conns, map(operator.not_, f))
    ]
    return counted, [f.count(False) for f in counted_flags], active


def _capacity(state: TunnelState, connectors: tuple[Connector, ...], expect: TunnelExpect, out: list[Finding]) -> None:
    severity = expect.severity
    counted, counts, active = _counted(connectors, state.active_count)
    if expect.min_connectors is not None and expect.checks("min_connectors") and len(counted) == len(connectors):
        running = len(counts) - counts.count(0)
        if running < expect.min_connectors:
            out.append(
                Finding(
                    "min_connectors",
                    severity,
                    f"{running} of {expect.min_connectors} expected connectors running",
                    "run another cloudflared replica for this tunnel on a separate host: one host failing now "
                    "takes it down"
                    if running
                    else "no cloudflared runs it: start one on each host that should (cloudflared tunnel run NAME)",
                )
            )
    if active and expect.checks("min_colos"):
        colos = Counter(map(_COLO, active))
        for unnamed in (None, ""):  # as ``colo_name or "?"``
            if unnamed in colos:
                colos["?"] += colos.pop(unnamed)
        if len(colos) < expect.min_colos:
            where = ", ".join(f"{n}x{clean(colo, 8)}" for colo, n in sorted(colos.items()))
            message = (
                f"all {len(active)} connections in one colo ({where})"
                if len(colos) == 1
                else f"connections in {len(colos)} of {expect.min_colos} expected colos ({where})"
            )
            out.append(
                Finding(
                    "min_colos",
                    severity,
                    message,
                    "one data centre failing drops them all: cloudflared normally spreads over two; check the "
                    "hosts' network path to Cloudflare (firewall, --region, --edge-ip-version)",
                )
            )
    if expect.checks("min_active_per_connector"):
        least = expect.min_active_per_connector
        for c, n in zip(counted, counts, strict=True):
            if n < least:
                out.append(
                    Finding(
                        "min_active_per_connector",
                        severity,
                        f"connector {short_id(c.id)} has {n} of {least} connections active",
                        "check that cloudflared's host reaches Cloudflare on port 7844 (TCP and UDP) and its log "
                        "for connection errors; --ha-connections sets how many it opens",
                        c.id,
                    )
                )
    if expect.max_versions is not None and expect.checks("max_versions"):
        versions = sorted({clean(c.version, 24) for c in connectors})
        if len(versions) > expect.max_versions:
            out.append(
                Finding(
                    "max_versions",
                    severity,
                    f"{len(versions)} cloudflared versions across {len(connectors)} connectors "
                    f"({', '.join(versions)}); at most {expect.max_versions} expected",
                    "finish the rolling upgrade: bring every connector to the same cloudflared release",
                )
            )


def _placement(connectors: tuple[Connector, ...], expect: TunnelExpect, out: list[Finding]) -> None:
    networks = expect.origin_ips
    if networks is not None and expect.checks("origin_ips"):
        allowed = ", ".join(str(n) for n in networks)
        for c in connectors:
            outside = [
                ip
                for ip in dict.fromkeys(conn.origin_ip for conn in c.conns if conn.origin_ip)
                if not _inside(ip, networks)
            ]
            if outside:
                out.append(
                    Finding(
                        "origin_ips",
                        Severity.CRITICAL,
                        f"connector {short_id(c.id)} connects from {clean(', '.join(outside), 80)}, outside "
                        f"the expected {allowed}",
                        "find which host runs it: a cloudflared nobody expects may hold the tunnel's token "
                        "(rotate it), or the host's address moved (update origin_ips)",
                        c.id,
                    )
                )
    colos = expect.colos
    if colos is not None and expect.checks("colos"):
        for c in connectors:
            stray = Counter(
                conn.colo_name or "?"
                for conn in c.conns
                if conn.is_pending_reconnect is False and (conn.colo_name or "?").upper() not in colos
            )
            if stray:
                where = ", ".join(f"{n}x{clean(colo, 8)}" for colo, n in sorted(stray.items()))
                out.append(
                    Finding(
                        "colos",
                        Severity.CRITICAL,
                        f"connector {short_id(c.id)} has connections outside the allowed colos: {where} "
                        f"(allowed: {', '.join(sorted(colos))})",
                        "cloudflared lands where the host's network routes it: check the host's region and "
                        "cloudflared's --region, or widen colos",
                        c.id,
                    )
                )


def _inside(ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    # inet_pton rather than ipaddress.ip_address: the same answer, parsed in C (a 10,000-tunnel account's first
    # pass spent a third of its time parsing origin IPs).
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except (OSError, ValueError):
        return False
    value, version = int.from_bytes(packed, "big"), 6 if len(packed) == 16 else 4
    return any(n.version == version and int(n.network_address) <= value <= int(n.broadcast_address) for n in networks)


def _versions(
    state: TunnelState,
    connectors: tuple[Connector, ...],
    expect: TunnelExpect,
    now: datetime | None,
    out: list[Finding],
    reuse: FleetFindings | None = None,
) -> None:
    remote = state.reach
    if (
        remote is not None
        and remote.managed == "cloudflare"
        and remote.config_version is not None
        and expect.checks("config_drift")
    ):
        latest = remote.config_version
        drift: dict[int, str] = {}  # a connector's config version -> the message's rest (a fleet shares a few)
        for c in connectors:
            applied = c.config_version
            if applied is not None and applied < latest:
                rest = drift.get(applied)
                if rest is None:
                    rest = drift[applied] = (
                        f"runs configuration version {applied}, the tunnel's remote configuration is version {latest}"
                    )
                out.append(
                    Finding(
                        "config_drift",
                        Severity.WARNING,
                        f"connector {short_id(c.id)} {rest}",
                        "cloudflared on that host has not applied the latest configuration: check its log for "
                        "configuration update errors, or restart it",
                        c.id,
                    )
                )
    if now is None or not expect.checks("old_release"):
        return
    today = now.year * 12 + now.month
    # A cloudflared version -> the message's rest, None when it is no date or not too old: worked out once per
    # version (a fleet runs a few), and each connector's looked up at C speed.
    versions = list(map(_VERSION, connectors))
    verdicts = {release: _old_release(release, today) for release in set(versions)}
    said = list(map(verdicts.__getitem__, versions))
    if not any(said):
        return
    out.extend((reuse or FleetFindings()).old_release(compress(connectors, said), filter(None, said)))


class FleetFindings:
    """A tunnel's per-connector findings of a fleet-wide check, kept from one working out to the next: a fleet on an
    old cloudflared has one per connector (25,000 at 100,000 connections), and each poll that changed any of its
    connections made them all again, to be walked by the collector and compared by the change engine. A finding
    that says the same (same connector, same words) is handed back, the very object (findings are frozen)."""

    __slots__ = ("_old",)

    def __init__(self) -> None:
        self._old: dict[tuple[str, str], Finding] = {}  # (connector id, what is said after it) -> its finding

    def old_release(self, connectors: Iterable[Connector], said: Iterable[str]) -> list[Finding]:
        known = self._old
        keys = list(zip(map(_ID, connectors), said, strict=True))  # each connector's id read once, at C speed
        warning = Severity.WARNING
        found = [
            known.get(key) or made("old_release", warning, f"connector {short_id(cid)} {rest}", _OLD_RELEASE_HINT, cid)
            for key in keys
            for cid, rest in (key,)
        ]
        # This time's only: connectors that left or were upgraded are forgotten.
        self._old = dict(zip(keys, found, strict=True))
        return found


def _old_release(version: str | None, today: int) -> str | None:
    """What an old_release finding says of ``version`` after the connector's id; None: no finding (no date, or
    within ``SUPPORTED_MONTHS`` of ``today``, a month count)."""
    released = release_month(version)
    if released is None:
        return None
    months = today - (released[0] * 12 + released[1])
    if months <= SUPPORTED_MONTHS:
        return None
    return f"runs cloudflared {clean(version, 24)}, released {released[0]}-{released[1]:02d} ({months} months ago)"


def _pending(
    state: TunnelState, connectors: tuple[Connector, ...], now: datetime, since: PendingSince, out: list[Finding]
) -> None:
    tid = state.tunnel.id
    for c in connectors:
        stuck = [
            (since[key], conn.colo_name)
            for conn in c.conns
            if conn.is_pending_reconnect is True
            and (key := (tid, c.id, conn.id)) in since
            and now - since[key] > PENDING_TOO_LONG
        ]
        if stuck:
            longest = now - min(at for at, _ in stuck)
            colos = ", ".join(sorted({clean(colo, 8) for _, colo in stuck}))
            minutes = int(longest.total_seconds() // 60)
            out.append(
                Finding(
                    "pending_reconnect",
                    Severity.WARNING,
                    f"connector {short_id(c.id)}: {len(stuck)} connection(s) pending a reconnect for "
                    f"{minutes} min or more ({colos})",
                    "cloudflared is not getting them back: check its host's network and its log; restarting it "
                    "gives fresh connections",
                    c.id,
                )
            )


def _local(connectors: tuple[Connector, ...], local: LocalReady, out: list[Finding]) -> None:
    if local.connector_id is None or local.ready_connections is None:
        return
    for c in connectors:
        if c.id != local.connector_id or not _known(c):
            continue
        api = sum(1 for conn in c.conns if conn.is_pending_reconnect is False)
        ready = local.ready_connections
        if ready == api:
            return
        severity = Severity.CRITICAL if ready == 0 and api > 0 else Severity.WARNING
        out.append(
            Finding(
                "local_ready",
                severity,
                f"this host's cloudflared ({clean(local.address, 60)}) says {ready} connections ready, "
                f"the API lists {api} active",
                "the API lags the connector by up to a minute: if it persists, read the local cloudflared's log "
                "(its metrics server answered /ready)",
                c.id,
            )
        )
        return


# What a TunnelState works out from its tunnel and connections alone (its cached properties), which the same state
# with findings has too: handed over rather than counted again over every connection (at 100,000, 50 ms).
_FROM_CONNECTIONS = ("health", "active_count", "pending_count")


def _same_inputs(before: TunnelState, after: TunnelState) -> bool:
    """Whether ``tunnel_findings`` has the same to go on (the same objects): not ``fetched_at`` nor ``problems``."""
    return (
        before.tunnel is after.tunnel
        and before.connectors is after.connectors
        and before.reach is after.reach
        and before.error == after.error
    )


def _with_findings(state: TunnelState, findings: tuple[Finding, ...]) -> TunnelState:
    result = replace(state, findings=findings)
    known = state.__dict__
    result.__dict__.update((name, known[name]) for name in _FROM_CONNECTIONS if name in known)
    return result


def with_findings(
    snapshot: Snapshot,
    expectations: Expectations | None = None,
    now: datetime | None = None,
    pending_since: PendingSince | None = None,
) -> Snapshot:
    """The snapshot with every tunnel's findings filled in, worked out afresh (``FindingRules`` keeps what did not
    change from one poll to the next)."""
    return FindingRules(expectations).apply(snapshot, now, pending_since)


class FindingRules:
    """The rules as one poll engine applies them, poll after poll: it tracks since when each connection has been
    pending, and hands back the very same state (and tunnels tuple) for a tunnel whose findings did not change, so
    that every later stage can tell "nothing changed" by identity (see ``same_objects``)."""

    def __init__(self, expectations: Expectations | None = None) -> None:
        self.expectations = expectations if expectations is not None else Expectations()
        self._pending: dict[tuple[str, str, str], datetime] = {}
        # tunnel id -> (the state as the engine made it, the same with its findings): for the next poll's identity
        self._memo: dict[str, tuple[TunnelState, TunnelState]] = {}
        self._fleet: dict[str, FleetFindings] = {}  # tunnel id -> its per-connector findings, to hand back
        self._expect: dict[str, tuple[str | None, TunnelExpect]] = {}  # tunnel id -> (its name, its expectations)
        self._context: tuple[object, ...] | None = None  # what every tunnel's findings depend on besides itself
        self._last_out: tuple[TunnelState, ...] = ()

    def apply(
        self, snapshot: Snapshot, now: datetime | None = None, pending_since: PendingSince | None = None
    ) -> Snapshot:
        """``snapshot`` with its tunnels' findings. ``now``: default the snapshot's time. ``pending_since``: given,
        it replaces this object's own tracking (for one-shot callers and tests)."""
        now = now if now is not None else snapshot.fetched_at
        since = self._track(snapshot, now) if pending_since is None else pending_since
        context = (now.date(), snapshot.local)
        same_context = context == self._context
        self._context = context
        memo = self._memo
        out: list[TunnelState] = []
        for state in snapshot.tunnels:
            hit = memo.get(state.tunnel.id)
            findings: tuple[Finding, ...] | None = None
            if same_context and hit is not None and state.pending_count == 0:
                if hit[0] is state:
                    out.append(hit[1])  # nothing it depends on changed: not even worked out again
                    continue
                if _same_inputs(hit[0], state):
                    # Read again and the same (only when it was read moved): the same findings, the very same
                    # tuple, so later stages compare them by identity (25,000 findings at 100,000 connections on
                    # an old cloudflared fleet, worked out and compared on every poll before).
                    findings = hit[1].findings
            if findings is None:
                fleet = self._fleet.get(state.tunnel.id)
                if fleet is None:
                    fleet = self._fleet[state.tunnel.id] = FleetFindings()
                findings = tunnel_findings(state, self._expect_of(state), now, snapshot.local, since, reuse=fleet)
            if hit is not None and hit[0] is state and hit[1].findings == findings:
                result = hit[1]
            elif findings == state.findings:
                result = state
            else:
                result = _with_findings(state, findings)
            memo[state.tunnel.id] = (state, result)
            out.append(result)
        if len(memo) > len(snapshot.tunnels):
            self._memo = {s.tunnel.id: memo[s.tunnel.id] for s in snapshot.tunnels}
            self._expect = {tid: e for tid, e in self._expect.items() if tid in self._memo}
            self._fleet = {tid: f for tid, f in self._fleet.items() if tid in self._memo}
        if same_objects(out, snapshot.tunnels):
            tunnels = snapshot.tunnels
        elif same_objects(out, self._last_out):
            tunnels = self._last_out
        else:
            tunnels = tuple(out)
        self._last_out = tunnels
        return snapshot if tunnels is snapshot.tunnels else replace(snapshot, tunnels=tunnels)

    def _expect_of(self, state: TunnelState) -> TunnelExpect:
        """The tunnel's expectations, resolved once per name (globs match names; a renamed tunnel is resolved again)."""
        name, tid = state.tunnel.name, state.tunnel.id
        known = self._expect.get(tid)
        if known is not None and known[0] == name:
            return known[1]
        expect = self.expectations.for_tunnel(name, tid)
        self._expect[tid] = (name, expect)
        return expect

    def _track(self, snapshot: Snapshot, now: datetime) -> PendingSince:
        """Since when each connection pending now has been seen pending (the first poll that saw it)."""
        before = self._pending
        after: dict[tuple[str, str, str], datetime] = {}
        for state in snapshot.tunnels:
            if not state.pending_count:
                continue
            tid = state.tunnel.id
            for c in state.connectors or ():
                for conn in c.conns:
                    if conn.is_pending_reconnect is True:
                        key = (tid, c.id, conn.id)
                        after[key] = before.get(key, now)
        self._pending = after
        return after
