"""What the client tree shows, worked out apart from the widget: one part per tunnel (its item, then its
connectors' and connections' items, in display order), each item a node's ref, parent and label parts, and
TreeParts, which hands back an unchanged tunnel's very part so the tree skips it by identity.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tunneltop.model.health import Health, connector_health, edge_summary
from tunneltop.model.records import Connection, Connector
from tunneltop.model.snapshot import TunnelState, same_objects
from tunneltop.sanitize import clean
from tunneltop.ui.text import HEALTH_GLYPH, HEALTH_STYLE, STATE_LABEL, findings_mark, short_id, verdict_glyph

# A tunnel shows at most this many connectors in the tree. A tree of 25,000 connectors cannot be read, and Textual's
# Tree lays out every node on each change (about a second at that size); the table lists every connection, and the
# filter (/) brings any connector into the tree. Which ones are shown: see _worth_showing.
CONNECTORS_SHOWN_MAX = 200


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What a tree node stands for. ``kind`` is ``tunnel``, ``connector`` or ``conn``."""

    kind: str
    tunnel_id: str
    connector_id: str | None = None
    conn_id: str | None = None
    # A plain attribute, set once: the tree reads it for every node on every redraw.
    node_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = (self.tunnel_id, self.connector_id, self.conn_id)
        object.__setattr__(self, "node_id", "/".join(p for p in parts if p is not None))


@dataclass(frozen=True, slots=True)
class TreeItem:
    ref: NodeRef
    parent: str | None
    label: tuple[tuple[str, str], ...]  # (text, style) parts: compared cheaply, built into Text when changed


_Needs = dict[str, tuple[Connector, tuple[bool, float, str]]]  # connector id -> (connector, its need but this host)


def _worth_showing(
    connectors: Sequence[Connector], this_host: str | None, known: _Needs, kept: _Needs
) -> list[Connector]:
    """The CONNECTORS_SHOWN_MAX connectors an operator most needs to see: this host's, then those not healthy, then
    the newest (a reconnect or restart makes a connector new); ties by id, so the choice is stable. A connector's need
    is taken from ``known`` while it is the same object (a failover changes a few of 25,000) and put in ``kept``."""

    def need(connector: Connector) -> tuple[bool, bool, float, str]:
        seen = known.get(connector.id)
        if seen is None or seen[0] is not connector:
            run_at = connector.run_at.timestamp() if connector.run_at is not None else float("-inf")
            seen = (connector, (connector_health(connector) is Health.HEALTHY, -run_at, connector.id))
        kept[connector.id] = seen
        return (connector.id != this_host, *seen[1])

    return heapq.nsmallest(CONNECTORS_SHOWN_MAX, connectors, key=need)


def _tunnel_label(state: TunnelState, hidden: int = 0) -> tuple[tuple[str, str], ...]:
    health = state.health
    glyph, style = verdict_glyph(health, state.findings)
    found, found_style = findings_mark(state.findings, title=False)
    counts = f" {state.active_count}↑" + (f" {state.pending_count}⟳" if state.pending_count else "")
    # Connections kept from an earlier read while a refresh fails: say so, the details say since when and why. A
    # tunnel watched by name that was deleted says that rather than only "down".
    stale = state.error is not None and state.connectors is not None
    mark = " DELETED" if state.tunnel.deleted_at is not None else " STALE" if stale else ""
    return (
        (glyph + " ", style),
        (clean(state.tunnel.name or state.tunnel.id, 40), "bold"),
        (counts, "yellow" if state.pending_count else "dim"),
        (" " + found if found else "", found_style),
        (mark, "bold red"),
        (f" (+{hidden:,} more connectors: in the table, / finds them)" if hidden else "", "dim"),
    )


def _connector_label(
    connector: Connector, shown: list[Connection], this_host: bool = False
) -> tuple[tuple[str, str], ...]:
    health = connector_health(connector)
    return (
        (HEALTH_GLYPH[health] + " ", HEALTH_STYLE[health]),
        (short_id(connector.id), ""),
        # cloudflared's /ready on this host named this connector: the one an operator here can restart.
        (" this host" if this_host else "", "bold cyan"),
        (f" {clean(connector.version, 16)} {clean(connector.arch, 16)}", "dim"),
        (f" ({len(shown)}) {clean(edge_summary(shown), 40)}", ""),
    )


def _conn_label(conn: Connection) -> tuple[tuple[str, str], ...]:
    text, style = STATE_LABEL[conn.state]
    glyph = text.split(" ", 1)[0]
    return (
        (glyph + " ", style),
        (clean(conn.colo_name, 8), "bold"),
        (" " + clean(conn.origin_ip, 45), "yellow" if conn.state == "pending" else ""),
    )


_Entries = dict[str, tuple[Connector, list[TreeItem], list[Connection]]]


def _same_state(a: TunnelState, b: TunnelState) -> bool:
    if a is b:
        return True
    if a.error != b.error or a.findings != b.findings or not (a.tunnel is b.tunnel or a.tunnel == b.tunnel):
        return False
    if a.connectors is None or b.connectors is None:
        return a.connectors is b.connectors
    return same_objects(a.connectors, b.connectors)


class TreeParts:
    """The wanted content of one tree, redraw after redraw (see ClientTree.parts_for).

    A redraw rebuilds the tree's wanted content; a tunnel whose records are unchanged (parsing hands back the same
    objects) gets its previous items back, so show() can skip them by identity; in a changed tunnel, so do its
    unchanged connectors and, in a changed connector, its unchanged connections. Holds the last unfiltered call
    only, so only the tunnels passed to it: a tunnel that went is forgotten with the next call."""

    def __init__(self) -> None:
        # tunnel id -> (state, include_empty, items, {connector id: (connector, its items, its connections in order)})
        self._items: dict[str, tuple[TunnelState, bool, list[TreeItem], _Entries]] = {}
        self._last_call: tuple[Iterable[TunnelState], bool, list[list[TreeItem]]] | None = None
        self._this_host: str | None = None
        self._needs: _Needs = {}  # see _worth_showing: of the connectors the last call looked at

    def parts(
        self,
        states: Iterable[TunnelState],
        visible: set[str] | None,
        include_empty: bool = True,
        this_host: str | None = None,
    ) -> list[list[TreeItem]]:
        """The tree's wanted content in display order, one part per tunnel: the tunnel's item, then its connectors'
        and connections'. ``visible`` limits connections to those row keys. Without it, a tunnel whose records are
        unchanged gets back the very same part (the same list object), which show() skips unread. ``this_host``:
        the id of the connector running on this host (cloudflared's /ready), labelled so."""
        if this_host != self._this_host:  # another connector's label says "this host": nothing kept holds
            self._items, self._last_call, self._this_host = {}, None, this_host
        last_call = self._last_call
        if (
            visible is None
            and isinstance(states, tuple)  # immutable: the same object has the same content
            and last_call is not None
            and last_call[0] is states
            and last_call[1] == include_empty
        ):
            return last_call[2]  # the same tunnels tuple (an unchanged poll, see TunnelSource.poll): the same parts
        parts: list[list[TreeItem]] = []
        last_items = self._items
        needs = (self._needs, {})  # what the last call knew, what this one keeps
        memo: dict[str, tuple[TunnelState, bool, list[TreeItem], _Entries]] = {}
        for state in states:
            hit = last_items.get(state.tunnel.id)
            if visible is not None:
                # A filtered part is made afresh, but from the same connection items as the unfiltered one: while
                # a filter is typed or cleared, show() then adds or removes only the connections that left or came.
                previous = hit[3] if hit is not None else None
                parts.append(_state_items(state, visible, include_empty, previous, None, this_host, needs))
                continue
            if hit is not None and hit[1] == include_empty and _same_state(hit[0], state):
                part, entries = hit[2], hit[3]
            else:
                entries = {}
                previous = hit[3] if hit is not None else {}
                part = _state_items(state, None, include_empty, previous, entries, this_host, needs)
            memo[state.tunnel.id] = (state, include_empty, part, entries)
            parts.append(part)
        self._needs = needs[1]
        if visible is None:
            self._items = memo
            self._last_call = (states, include_empty, parts)
        return parts


def tree_parts(
    states: Iterable[TunnelState], visible: set[str] | None, include_empty: bool = True, this_host: str | None = None
) -> list[list[TreeItem]]:
    """What TreeParts.parts gives, worked out afresh: for one-shot callers (a live tree keeps a TreeParts)."""
    return TreeParts().parts(states, visible, include_empty, this_host)


def _state_items(
    state: TunnelState,
    visible: set[str] | None,
    include_empty: bool,
    previous: _Entries | None = None,
    entries: _Entries | None = None,
    this_host: str | None = None,
    needs: tuple[_Needs, _Needs] | None = None,
) -> list[TreeItem]:
    items: list[TreeItem] = []
    t = state.tunnel
    # Unfiltered, each connector shows all its connections: nothing is made per connector here (25,000 pairs and
    # lists a redraw at 100,000 connections, of which 200 are shown), only for those chosen.
    connectors: Sequence[Connector] = state.connectors or ()
    shown_of: dict[int, list[Connection]] | None = None  # by identity: the API may list a connector id twice
    if visible is not None:
        shown_of = {}
        for connector in connectors:
            shown = [c for c in connector.conns if f"{t.id}/{connector.id}/{c.id}" in visible]
            if shown:
                shown_of[id(connector)] = shown
        connectors = [c for c in connectors if id(c) in shown_of]
    if not connectors and not include_empty:
        return items
    hidden = max(0, len(connectors) - CONNECTORS_SHOWN_MAX)
    if hidden:
        connectors = _worth_showing(connectors, this_host, *(needs or ({}, {})))
    tref = NodeRef("tunnel", t.id)
    items.append(TreeItem(tref, None, _tunnel_label(state, hidden)))
    for connector in sorted(connectors, key=lambda c: (c.run_at is None, c.run_at, c.id)):
        shown = connector.conns if shown_of is None else shown_of[id(connector)]
        hit = previous.get(connector.id) if previous is not None else None
        if hit is not None and hit[0] is connector and visible is None:
            part, conns = hit[1], hit[2]
        else:
            before = {c.id: (c, item) for c, item in zip(hit[2], hit[1][1:], strict=True)} if hit else {}
            cref = NodeRef("connector", t.id, connector.id)
            part = [TreeItem(cref, tref.node_id, _connector_label(connector, shown, connector.id == this_host))]
            conns = sorted(shown, key=lambda c: (c.colo_name or "", c.id))
            for conn in conns:
                seen = before.get(conn.id)
                if seen is not None and seen[0] is conn:
                    part.append(seen[1])
                else:
                    xref = NodeRef("conn", t.id, connector.id, conn.id)
                    part.append(TreeItem(xref, cref.node_id, _conn_label(conn)))
        if entries is not None:
            entries[connector.id] = (connector, part, conns)
        items.extend(part)
    return items
