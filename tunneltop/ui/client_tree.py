"""The client tree: tunnel → connector → connection, refreshed in place.

Nodes are kept by id and only added, relabelled or removed, so a refresh never collapses what the user expanded
and the cursor stays on the node it was on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Span, Text, TextType
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tunneltop.model.snapshot import TunnelState, same_objects
from tunneltop.ui.line_style import PassStyle
from tunneltop.ui.textual_internals import store_node_label, tree_node_class, update_scrollbars
from tunneltop.ui.tree_lines import TreeLines
from tunneltop.ui.tree_parts import NodeRef, TreeItem, TreeParts, tree_parts

__all__ = ["ClientTree", "NodeRef", "TreeItem", "TreeParts", "tree_parts"]

# Connectors of a tunnel showing more connections than this start collapsed even where the app asks for them
# open (one or two tunnels shown): their connections then get no node until opened (see ClientTree._deferred).
_EXPAND_MAX = 2_000


class _Places:
    """Where each new node of one show() goes among its parent's children, as an index (TreeNode.add with a node
    to go before looks that node up by a scan of the children: at 10,000 connections under one tunnel, a filter
    cleared took seconds). The children in the tree are in the wanted order, so a new node's index is how many of
    its wanted siblings before it have a node. New nodes come in the wanted order, so each parent's siblings are
    walked once, by a pointer; each part is grouped by parent once, when one of its items first needs a place."""

    def __init__(self, parts: Sequence[Sequence[TreeItem]], by_id: dict[str, TreeNode[NodeRef]]) -> None:
        self._parts = parts
        self._by_id = by_id
        # parent node id -> (its wanted children's node ids, id() of each one's item -> its place among them)
        self._groups: dict[str | None, tuple[list[str], dict[int, int]]] = {}
        self._walked: dict[str | None, tuple[int, int]] = {}  # parent -> (siblings walked, how many had a node)

    def _group(self, parent: str | None, where: int) -> tuple[list[str], dict[int, int]]:
        found = self._groups.get(parent)
        if found is not None:
            return found
        if parent is None:
            heads = [p[0] for p in self._parts if p]
            found = self._groups[None] = ([i.ref.node_id for i in heads], {id(i): n for n, i in enumerate(heads)})
            return found
        for item in self._parts[where]:
            if item.parent is not None:
                ids, at = self._groups.setdefault(item.parent, ([], {}))
                at[id(item)] = len(ids)
                ids.append(item.ref.node_id)
        return self._groups[parent]

    def index(self, item: TreeItem, where: int) -> int:
        """The index among its parent's children for ``item``'s new node (made right after this call)."""
        ids, at = self._group(item.parent, where)
        place = at[id(item)]
        walked, present = self._walked.get(item.parent, (0, 0))
        by_id = self._by_id
        present += sum(1 for node_id in ids[walked:place] if node_id in by_id)
        self._walked[item.parent] = (place + 1, present + 1)
        return present


def _depth(node_id: str) -> int:
    return node_id.count("/")


# The label a node is added with, replaced by its own when it is first drawn or read (see ClientTree._stale).
_HELD = Text("")


def _text(parts: tuple[tuple[str, str], ...]) -> Text:
    # One Text with its spans, rather than an append per part: relabelling is most of what a busy poll costs here.
    spans = []
    start = 0
    for part, style in parts:
        end = start + len(part)
        if style and end > start:
            spans.append(Span(start, end, style))
        start = end
    return Text("".join(part for part, _ in parts), no_wrap=True, overflow="ellipsis", spans=spans)


class _ClientNode(TreeNode[NodeRef]):
    """A tree node whose label may be held back until it is read or drawn (see ClientTree._stale). Every node of a
    ClientTree is one (see textual_internals.tree_node_class); it adds no state to TreeNode."""

    @property
    def label(self) -> TextType:
        self.tree.freshen(self)  # type: ignore[attr-defined]
        return super().label

    @label.setter
    def label(self, new_label: TextType) -> None:
        self.set_label(new_label)

    def set_label(self, label: TextType) -> None:
        self.tree._stale.pop(self.id, None)  # type: ignore[attr-defined]
        super().set_label(label)


@tree_node_class(_ClientNode)
class ClientTree(PassStyle, Tree[NodeRef]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        self._label_widths: dict[int, tuple[Text, int]] = {}  # node id -> (label, its width); Tree's init measures
        # Labels that changed but have not been needed yet: node id -> label parts. A busy poll relabels hundreds
        # of nodes, most of them off screen; building each one's Text is left until it is drawn or read.
        self._stale: dict[int, tuple[tuple[str, str], ...]] = {}
        self._fitted = Size(0, 0)  # the virtual size its scrollbars were last fitted to (see refresh)
        # While show() edits the tree, the repaints and layouts each edit asks for (Tree asks on every node added
        # or removed: hundreds when a filter is cleared) are folded into one, asked for when it is done.
        self._held: list[bool] | None = None  # [a refresh asked for, a layout asked for], while held
        super().__init__(Text("tunnels"), **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2
        self._by_id: dict[str, TreeNode[NodeRef]] = {}
        self._label_parts: dict[str, tuple[tuple[str, str], ...]] = {}
        self._last_show: tuple[list[Sequence[TreeItem]], bool] = ([], False)
        self._last_parts: dict[int, Sequence[TreeItem]] = {}  # the parts of the last show by id()
        self._children: Counter[str | None] = Counter()  # node id -> how many items of the last show it parents
        # Connections under a collapsed connector get a node only when it is expanded (or asked for): an account
        # of 10,000 connections would otherwise keep 10,000 hidden nodes, and every one that opens or closes would
        # make Tree lay out the whole screen again. Connector node id -> {connection node id: item}.
        self._deferred: dict[str, dict[str, TreeItem]] = {}
        self._parts_memo = TreeParts()  # what parts_for remembers between redraws
        self.drawing = TreeLines(self)  # draws and keeps its lines (Tree's own way costs ~0.18 ms a line)

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> ClientTree:
        # Tree asks for a layout of the whole screen on every node added or removed and each time its count of
        # lines changes (about 40-60 ms at 200x50, several times for one filter key). Its size is the stylesheet's
        # (a fixed width, the height of its row): only its scrollbars need fitting, unless one comes or goes.
        held = self._held
        if held is not None and not recompose:
            held[0], held[1] = True, held[1] or layout
            return self
        height = self.styles.height
        if layout and not recompose and self.is_mounted and height is not None and not height.is_auto:
            layout = False
            if self.virtual_size != self._fitted:
                self._fitted = self.virtual_size
                bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
                update_scrollbars(self, self.virtual_size)
                layout = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != bars
        super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
        return self

    def render_lines(self, crop: Region) -> list[Strip]:
        self.drawing.begin()
        try:
            return super().render_lines(crop)
        finally:
            self.drawing.end()

    def render_line(self, y: int) -> Strip:
        return self.drawing.line(y)

    def freshen(self, node: TreeNode[NodeRef]) -> None:
        """Build the label of ``node`` if a change of it was held back (see ``_stale``)."""
        parts = self._stale.pop(node.id, None)
        if parts is not None:
            store_node_label(node, _text(parts))

    def render_label(self, node: TreeNode[NodeRef], base_style: Style, style: Style) -> Text:
        # The tree draws its lines itself (render_line); this is Tree's public way to a label, its held back
        # label built first.
        self.freshen(node)
        return super().render_label(node, base_style, style)

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        # Tree measures every line on each rebuild by rendering its label (a copy, styled); on an account-wide view
        # that is thousands of lines per poll. The width is the expand icon's plus the label's.
        icon = (self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE) if node.allow_expand else ""
        held = self._stale.get(node.id)
        if held is not None:  # a label held back is measured from its parts: its Text waits until it is drawn
            return cell_len(icon) + sum(cell_len(part) for part, _ in held)
        label = node.label
        assert isinstance(label, Text)  # Tree.process_label made it one
        known = self._label_widths.get(node.id)
        if known is None or known[0] is not label:
            known = self._label_widths[node.id] = (label, label.cell_len)
        return cell_len(icon) + known[1]

    def node_for(self, node_id: str) -> TreeNode[NodeRef] | None:
        node = self._by_id.get(node_id)
        if node is None and node_id.count("/") == 2:
            self._materialize(node_id.rsplit("/", 1)[0])
            node = self._by_id.get(node_id)
        return node

    def _materialize(self, connector_id: str) -> None:
        """Give the deferred connections of a connector their nodes."""
        parent = self._by_id.get(connector_id)
        items = self._deferred.pop(connector_id, None)
        if parent is None or not items:
            return
        for node_id, item in items.items():
            self._by_id[node_id] = self._hold(parent.add(_HELD, item.ref, allow_expand=False), item.label)
            self._label_parts[node_id] = item.label

    def _hold(self, node: TreeNode[NodeRef], parts: tuple[tuple[str, str], ...]) -> TreeNode[NodeRef]:
        """``node``, added with a placeholder label: its own is built from ``parts`` when it is drawn or read."""
        self._stale[node.id] = parts
        return node

    def process_label(self, label: TextType) -> Text:
        # Tree's copies the label's first line (Text.split); every label here is one line of Text already.
        return label if isinstance(label, Text) else super().process_label(label)

    def on_resize(self, event: events.Resize) -> None:
        # Tree's own handler (which this stops) forgets its list of lines on any resize (1,001 at 10,000
        # connections, each measured again), each time the event log is shown or hidden. The lines drawn are kept
        # by self.drawing, by width: a line's look does not depend on the tree's height.
        event.prevent_default()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        if event.node.data is not None and event.node.data.kind == "connector":
            self._materialize(event.node.data.node_id)

    def parts_for(
        self,
        states: Iterable[TunnelState],
        visible: set[str] | None,
        include_empty: bool = True,
        this_host: str | None = None,
    ) -> list[list[TreeItem]]:
        """The parts to show() for ``states`` (see TreeParts.parts): an unchanged tunnel gets back the very part it
        got from the last call, which show() skips unread."""
        return self._parts_memo.parts(states, visible, include_empty, this_host)

    def show(self, parts: Sequence[Sequence[TreeItem]], expand_connectors: bool = False) -> None:
        """Make the tree hold exactly the items of ``parts`` (see parts_for), in their order, touching only what
        changed."""
        last, last_expand = self._last_show
        if last_expand == expand_connectors and same_objects(parts, last):
            return  # the very parts of the last call: nothing to do
        self._held = held = [False, False]
        try:
            self._apply(parts, expand_connectors)
        finally:
            self._held = None
            if held[0]:
                self.refresh(layout=held[1])

    def _apply(self, parts: Sequence[Sequence[TreeItem]], expand_connectors: bool) -> None:
        """show()'s edits: nodes removed, added and relabelled where the parts changed."""
        cursor = self.cursor_node
        keep = cursor.data.node_id if cursor is not None and cursor.data is not None else None
        # An unchanged tunnel's part is the same object (see tree_parts), and so is an unchanged item within a
        # changed part: the parts that came and went are found at C speed, and only their items are looked at.
        position = dict(zip(map(id, parts), range(len(parts)), strict=True))
        before = self._last_parts
        came = sorted(position.keys() - before.keys(), key=position.__getitem__)
        old_items = {id(item): item for i in before.keys() - position.keys() for item in before[i]}
        new_items = {id(item): (item, position[i]) for i in came for item in parts[position[i]]}
        arrived = [(item, where) for key, (item, where) in new_items.items() if key not in old_items]
        left = [item for key, item in old_items.items() if key not in new_items]
        arriving = {item.ref.node_id for item, _ in arrived}
        self._last_show, self._last_parts = (list(parts), expand_connectors), {id(p): p for p in parts}
        children = self._children
        for item in left:
            children[item.parent] -= 1
        for item, _ in arrived:
            children[item.parent] += 1
        # Deepest first, so each removal is of a node still in the tree.
        for node_id in sorted((i.ref.node_id for i in left if i.ref.node_id not in arriving), key=_depth, reverse=True):
            self._label_parts.pop(node_id, None)
            removed = self._by_id.pop(node_id, None)
            if removed is not None:
                self._label_widths.pop(removed.id, None)
                self._stale.pop(removed.id, None)
                removed.remove()
            else:
                self._deferred.get(node_id.rsplit("/", 1)[0], {}).pop(node_id, None)
        for connector_id in [c for c, kids in self._deferred.items() if not kids or c not in self._by_id]:
            del self._deferred[connector_id]
        top, bottom = self.scroll_offset.y, self.scroll_offset.y + self.size.height  # the lines on screen
        places = _Places(parts, self._by_id)
        for item, where in arrived:
            node_id = item.ref.node_id
            node = self._by_id.get(node_id)
            has_children = children[node_id] > 0
            if node is None and item.ref.kind == "conn":
                owner = self._by_id.get(item.parent or "")
                if owner is not None and not owner.is_expanded:
                    self._deferred.setdefault(owner.data.node_id, {})[node_id] = item  # type: ignore[union-attr]
                    continue
            if node is None:
                parent = self.root if item.parent is None else self._by_id[item.parent]
                expand = item.ref.kind == "tunnel" or (
                    item.ref.kind == "connector" and expand_connectors and len(parts[where]) <= _EXPAND_MAX
                )
                node = parent.add(
                    _HELD, item.ref, before=places.index(item, where), expand=expand, allow_expand=has_children
                )
                self._by_id[node_id] = self._hold(node, item.label)
            else:
                if self._label_parts.get(node_id) != item.label:
                    # What set_label does, but its Text is built when drawn or read (labels are one line by
                    # construction: clean() replaces newlines), and only a line on screen is repainted. (Where
                    # nodes came or went, line numbers are out of date, but Tree then repaints everything.)
                    self._stale[node.id] = item.label
                    if top <= node.line < bottom:
                        node.refresh()  # repaints its line (the line is made again: its label is new)
                if node.allow_expand != has_children:
                    node.allow_expand = has_children
            self._label_parts[node_id] = item.label
        if keep is not None and keep in self._by_id:
            self.get_node_at_line(0)  # rebuild line numbers after edits
            target = self._by_id[keep]
            if target.line >= 0 and self.cursor_line != target.line:
                self.cursor_line = target.line

    def select_ref(self, node_id: str) -> None:
        node = self.node_for(node_id)
        if node is None:
            return
        parent = node.parent
        while parent is not None and parent is not self.root:
            if not parent.is_expanded:  # expand() rebuilds every line of the tree, expanded already or not
                parent.expand()
            parent = parent.parent
        self.get_node_at_line(0)
        self.move_cursor(node)
