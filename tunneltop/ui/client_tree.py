"""The client tree: tunnel → connector → connection, refreshed in place.

Nodes are kept by id and only added, relabelled or removed, so a refresh never collapses what the user expanded
and the cursor stays on the node it was on.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tunneltop.model.health import Health, edge_summary, tunnel_health
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import TunnelState
from tunneltop.sanitize import clean
from tunneltop.ui.text import HEALTH_GLYPH, HEALTH_STYLE, STATE_LABEL, short_id


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class TreeItem:
    ref: NodeRef
    parent: str | None
    label: tuple[tuple[str, str], ...]  # (text, style) parts: compared cheaply, built into Text when changed


def _tunnel_label(state: TunnelState) -> tuple[tuple[str, str], ...]:
    health = state.health
    counts = f" {state.active_count}↑" + (f" {state.pending_count}⟳" if state.pending_count else "")
    return (
        (HEALTH_GLYPH[health] + " ", HEALTH_STYLE[health]),
        (clean(state.tunnel.name or state.tunnel.id, 40), "bold"),
        (counts, "yellow" if state.pending_count else "dim"),
    )


def _connector_label(connector: Connector, shown: list[Connection]) -> tuple[tuple[str, str], ...]:
    health = tunnel_health_of(connector)
    return (
        (HEALTH_GLYPH[health] + " ", HEALTH_STYLE[health]),
        (short_id(connector.id), ""),
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


def tunnel_health_of(connector: Connector) -> Health:
    """A connector's own verdict: the tunnel rule applied to it alone."""
    return tunnel_health(Tunnel(id=connector.id), [connector])


# A redraw rebuilds the tree's wanted content; a tunnel whose records are unchanged (parsing hands back the same
# objects) gets its previous items back, so show() can skip them by identity. Holds the last unfiltered call only.
_last_items: dict[str, tuple[TunnelState, bool, list[TreeItem]]] = {}


def _same_state(a: TunnelState, b: TunnelState) -> bool:
    if a is b:
        return True
    if a.error != b.error or not (a.tunnel is b.tunnel or a.tunnel == b.tunnel):
        return False
    if a.connectors is None or b.connectors is None:
        return a.connectors is b.connectors
    return len(a.connectors) == len(b.connectors) and all(map(operator.is_, a.connectors, b.connectors))


def tree_items(states: Iterable[TunnelState], visible: set[str] | None, include_empty: bool = True) -> list[TreeItem]:
    """The tree's wanted content in display order. ``visible`` limits connections to those row keys."""
    global _last_items
    items: list[TreeItem] = []
    memo: dict[str, tuple[TunnelState, bool, list[TreeItem]]] = {}
    for state in states:
        if visible is not None:
            items.extend(_state_items(state, visible, include_empty))
            continue
        hit = _last_items.get(state.tunnel.id)
        if hit is not None and hit[1] == include_empty and _same_state(hit[0], state):
            part = hit[2]
        else:
            part = _state_items(state, None, include_empty)
        memo[state.tunnel.id] = (state, include_empty, part)
        items.extend(part)
    if visible is None:
        _last_items = memo
    return items


def _state_items(state: TunnelState, visible: set[str] | None, include_empty: bool) -> list[TreeItem]:
    items: list[TreeItem] = []
    t = state.tunnel
    connectors: list[tuple[Connector, list[Connection]]] = []
    for connector in state.connectors or ():
        shown = [c for c in connector.conns if visible is None or f"{t.id}/{connector.id}/{c.id}" in visible]
        if shown or visible is None:
            connectors.append((connector, shown))
    if not connectors and not include_empty:
        return items
    tref = NodeRef("tunnel", t.id)
    items.append(TreeItem(tref, None, _tunnel_label(state)))
    for connector, shown in sorted(connectors, key=lambda p: (p[0].run_at is None, p[0].run_at, p[0].id)):
        cref = NodeRef("connector", t.id, connector.id)
        items.append(TreeItem(cref, tref.node_id, _connector_label(connector, shown)))
        for conn in sorted(shown, key=lambda c: (c.colo_name or "", c.id)):
            xref = NodeRef("conn", t.id, connector.id, conn.id)
            items.append(TreeItem(xref, cref.node_id, _conn_label(conn)))
    return items


def _text(parts: tuple[tuple[str, str], ...]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for part, style in parts:
        text.append(part, style=style)
    return text


class ClientTree(Tree[NodeRef]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        self._label_widths: dict[int, tuple[Text, int]] = {}  # node id -> (label, its width); Tree's init measures
        super().__init__(Text("tunnels"), **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2
        self._by_id: dict[str, TreeNode[NodeRef]] = {}
        self._label_parts: dict[str, tuple[tuple[str, str], ...]] = {}
        self._items: dict[str, TreeItem] = {}  # the item each node was last shown from
        self._last_show: tuple[list[TreeItem], bool] = ([], False)

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        # Tree measures every line on each rebuild by rendering its label (a copy, styled); on an account-wide view
        # that is thousands of lines per poll. The width is the expand icon's plus the label's.
        icon = (self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE) if node.allow_expand else ""
        label = node._label
        known = self._label_widths.get(node._id)
        if known is None or known[0] is not label:
            known = self._label_widths[node._id] = (label, label.cell_len)
        return cell_len(icon) + known[1]

    def node_for(self, node_id: str) -> TreeNode[NodeRef] | None:
        return self._by_id.get(node_id)

    def show(self, items: list[TreeItem], expand_connectors: bool = False) -> None:
        """Make the tree hold exactly ``items``, in their order, touching only what changed."""
        last = self._last_show
        if last[1] == expand_connectors and len(last[0]) == len(items) and all(map(operator.is_, items, last[0])):
            return  # the very items of the last call (see tree_items): nothing to do
        self._last_show = (items, expand_connectors)
        cursor = self.cursor_node
        keep = cursor.data.node_id if cursor is not None and cursor.data is not None else None
        wanted = {item.ref.node_id: item for item in items}
        # Deepest first, so each removal is of a node still in the tree.
        for node_id in sorted((n for n in self._by_id if n not in wanted), key=lambda n: -n.count("/")):
            removed = self._by_id.pop(node_id)
            self._label_widths.pop(removed._id, None)
            removed.remove()
            self._label_parts.pop(node_id, None)
            self._items.pop(node_id, None)
        parents = {item.parent for item in items}
        siblings: dict[str | None, list[str]] | None = None
        created: set[str] = set()
        shown_from = self._items
        for item in items:
            node_id = item.ref.node_id
            if shown_from.get(node_id) is item:
                continue  # the very item shown last time (see tree_items): label and children unchanged
            node = self._by_id.get(node_id)
            if node is None:
                if siblings is None:
                    siblings = {}
                    for each in items:
                        siblings.setdefault(each.parent, []).append(each.ref.node_id)
                parent = self.root if item.parent is None else self._by_id[item.parent]
                # A parent made in this pass has no older children to slot between: append.
                fresh_parent = item.parent in created or (item.parent is None and not created and not self._by_id)
                before = None if fresh_parent else self._next_existing(siblings[item.parent], node_id)
                expand = item.ref.kind == "tunnel" or (item.ref.kind == "connector" and expand_connectors)
                node = parent.add(
                    _text(item.label), item.ref, before=before, expand=expand, allow_expand=node_id in parents
                )
                self._by_id[node_id] = node
                created.add(node_id)
            else:
                if self._label_parts.get(node_id) != item.label:
                    node.set_label(_text(item.label))
                if node.allow_expand != (node_id in parents):
                    node.allow_expand = node_id in parents
            self._label_parts[node_id] = item.label
            shown_from[node_id] = item
        if keep is not None and keep in self._by_id:
            self.get_node_at_line(0)  # rebuild line numbers after edits
            target = self._by_id[keep]
            if target.line >= 0 and self.cursor_line != target.line:
                self.cursor_line = target.line

    def _next_existing(self, order: list[str], node_id: str) -> TreeNode[NodeRef] | None:
        after = order[order.index(node_id) + 1 :]
        return next((self._by_id[n] for n in after if n in self._by_id), None)

    def select_ref(self, node_id: str) -> None:
        node = self._by_id.get(node_id)
        if node is None:
            return
        parent = node.parent
        while parent is not None and parent is not self.root:
            parent.expand()
            parent = parent.parent
        self.get_node_at_line(0)
        self.move_cursor(node)
