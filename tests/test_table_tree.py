"""The client tree at scale: connection nodes only under expanded connectors, reuse by identity, labels in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import TunnelState
from tunneltop.ui.client_tree import ClientTree, TreeParts, tree_parts

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def state(t: int, conns_per_connector: int = 4, pending: bool = False, extra: int = 0) -> TunnelState:
    connectors = []
    for c in range(2):
        conns = [
            Connection(
                id=f"conn-{t}-{c}-{n}",
                colo_name=("DFW", "LAX")[n % 2],
                origin_ip="192.0.2.1",
                opened_at=NOW - timedelta(hours=1),
                is_pending_reconnect=pending and n == 0,
            )
            for n in range(conns_per_connector + (extra if c == 0 else 0))
        ]
        connectors.append(Connector(id=f"c-{t}-{c}", version="2025.1.0", run_at=NOW - timedelta(hours=c), conns=conns))
    return TunnelState(Tunnel(id=f"t-{t}", name=f"tunnel-{t:02d}", status="healthy"), tuple(connectors))


class TreeApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ClientTree(id="tree")


def conn_nodes(tree: ClientTree) -> set[str]:
    return {n for n in tree._by_id if n.count("/") == 2}


async def test_connections_get_nodes_only_when_their_connector_is_expanded() -> None:
    states = [state(t) for t in range(5)]
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(states, None), expand_connectors=False)
        await pilot.pause()
        assert conn_nodes(tree) == set()
        connector = tree.node_for("t-1/c-1-0")
        assert connector is not None and connector.allow_expand and not connector.is_expanded
        connector.expand()
        await pilot.pause()
        assert conn_nodes(tree) == {f"t-1/c-1-0/conn-1-0-{n}" for n in range(4)}
        assert [child.data.conn_id for child in connector.children] == [f"conn-1-0-{n}" for n in (0, 2, 1, 3)]
        # Asking for a hidden connection by id creates it (the event log selects connections this way).
        assert tree.node_for("t-3/c-3-1/conn-3-1-2") is not None
        tree.select_ref("t-4/c-4-0/conn-4-0-1")
        await pilot.pause()
        assert tree.cursor_node.data.node_id == "t-4/c-4-0/conn-4-0-1"


async def test_a_poll_changes_only_what_changed_and_forgets_what_went() -> None:
    states = [state(t) for t in range(5)]
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(states, None))
        await pilot.pause()
        nodes = dict(tree._by_id)
        labels = {n: node.label for n, node in nodes.items()}
        # Tunnel 2 gains a connection and a pending reconnect; tunnel 4 goes; the rest are the same objects.
        changed = [*states[:2], state(2, pending=True, extra=1), states[3]]
        tree.show(tree.parts_for(changed, None))
        await pilot.pause()
        assert "t-4" not in tree._by_id and not any(n.startswith("t-4/") for n in tree._deferred)
        for node_id in ("t-0", "t-1/c-1-0", "t-3"):
            assert tree.node_for(node_id) is nodes[node_id] and tree.node_for(node_id).label is labels[node_id]
        assert tree.node_for("t-2") is nodes["t-2"], "relabelled in place, not replaced"
        assert "⟳" in tree.node_for("t-2").label.plain and tree.node_for("t-2").label.plain != labels["t-2"].plain
        assert "(5)" in tree.node_for("t-2/c-2-0").label.plain
        assert "t-2/c-2-0/conn-2-0-4" in tree._deferred["t-2/c-2-0"], "the new connection waits for an expand"
        # The very same items again: nothing to do at all.
        items = tree.parts_for(changed, None)
        assert all(a is b for a, b in zip(items, tree.parts_for(changed, None), strict=True))


async def test_expanded_connectors_follow_their_connections() -> None:
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for([state(0)], None), expand_connectors=True)
        await pilot.pause()
        assert len(conn_nodes(tree)) == 8
        tree.show(tree.parts_for([state(0, conns_per_connector=2)], None), expand_connectors=True)
        await pilot.pause()
        assert conn_nodes(tree) == {f"t-0/c-0-{c}/conn-0-{c}-{n}" for c in range(2) for n in range(2)}


def _shape(tree: ClientTree) -> list[tuple[str, bool, str]]:
    """Every node in display order (expanded or not), with whether it can expand and its label."""
    out: list[tuple[str, bool, str]] = []
    stack = list(reversed(tree.root.children))
    while stack:
        node = stack.pop()
        out.append((node.data.node_id, node.allow_expand, node.label.plain))
        stack.extend(reversed(node.children))
    return out


async def test_updates_in_place_end_where_building_afresh_ends() -> None:
    # Tunnel 2 arrives between 1 and 3, tunnel 0 loses its connections, tunnel 1 gains one in the middle of its
    # colo order: the tree updated in place has the same nodes, order, expand arrows and labels as a new tree.
    first = [state(0), state(1), state(3)]
    then = [state(0, conns_per_connector=0), state(1, extra=1), state(2), first[2]]
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(first, None), expand_connectors=True)
        await pilot.pause()
        tree.show(tree.parts_for(then, None), expand_connectors=True)
        await pilot.pause()
        updated = _shape(tree)
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(then, None), expand_connectors=True)
        await pilot.pause()
        assert updated == _shape(tree)
    assert [n for n, _, _ in updated if "/" not in n] == ["t-0", "t-1", "t-2", "t-3"]
    connectors_of_0 = [(n, can_expand) for n, can_expand, _ in updated if n.startswith("t-0/")]
    assert connectors_of_0 == [("t-0/c-0-1", False), ("t-0/c-0-0", False)], "no connections left: no arrow"
    conns_of_1 = [n.rsplit("-", 1)[1] for n, _, _ in updated if n.startswith("t-1/c-1-0/")]
    assert conns_of_1 == ["0", "2", "4", "1", "3"], "the new connection slots into colo order (DFW, then LAX)"


async def test_labels_of_nodes_off_screen_are_built_when_they_come_into_view() -> None:
    states = [state(t) for t in range(40)]
    async with TreeApp().run_test(size=(80, 10)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(states, None))
        await pilot.pause()
        changed = [*states[:39], state(39, pending=True)]
        tree.show(tree.parts_for(changed, None))
        await pilot.pause()
        last = tree.node_for("t-39")
        assert last is not None and last._id in tree._stale, "off screen: its new label is not built yet"
        tree.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert last._id not in tree._stale
        screen = "\n".join(line.text for line in pilot.app.screen._compositor.render_strips())
        assert "tunnel-39" in screen and "⟳" in screen
        # Reading a label anywhere gives the current one, drawn or not.
        tree.show(tree.parts_for(states, None))
        assert "⟳" not in tree.node_for("t-39").label.plain


def test_a_tunnel_shown_from_an_earlier_read_says_stale() -> None:
    fresh = state(3)
    stale = TunnelState(fresh.tunnel, fresh.connectors, (), "HTTP 502", fetched_at=NOW - timedelta(minutes=2))
    unknown = TunnelState(fresh.tunnel, None, (), "HTTP 502")

    def label(s: TunnelState) -> str:
        return "".join(text for text, _ in tree_parts([s], None)[0][0].label)

    assert "STALE" in label(stale) and "STALE" not in label(fresh) and "STALE" not in label(unknown)
    gone = TunnelState(fresh.tunnel.model_copy(update={"deleted_at": NOW}), ())
    assert label(gone).endswith(" DELETED")


def test_a_tree_keeps_its_own_parts_and_only_for_the_tunnels_it_was_last_given() -> None:
    states = tuple(state(t) for t in range(3))
    memo, other = TreeParts(), TreeParts()
    first = memo.parts(states, None)
    # The same tunnels tuple (an unchanged poll): the very same list of parts. The same states in another
    # sequence: a new list of the very same parts.
    assert memo.parts(states, None) is first
    again = memo.parts(list(states), None)
    assert again is not first and all(a is b for a, b in zip(again, first, strict=True))
    # A tunnel that went is forgotten with the next call.
    memo.parts(states[1:], None)
    assert set(memo._items) == {"t-1", "t-2"}
    # A filtered call builds its parts afresh and leaves what is kept alone.
    [part, *_] = memo.parts(states, {"t-0/c-0-0/conn-0-0-0"})
    assert [item.ref.node_id for item in part] == ["t-0", "t-0/c-0-0", "t-0/c-0-0/conn-0-0-0"]
    assert set(memo._items) == {"t-1", "t-2"}
    # Another tree's memo shares nothing with this one; the plain function keeps nothing between calls.
    assert not any(a is b for a, b in zip(other.parts(states, None), first, strict=True))
    assert not any(a is b for a, b in zip(tree_parts(states, None), tree_parts(states, None), strict=True))
    one, two = ClientTree(), ClientTree()
    assert one.parts_for(states, None) is one.parts_for(states, None)
    assert not any(a is b for a, b in zip(one.parts_for(states, None), two.parts_for(states, None), strict=True))


def wide(connectors: int, skip: int = -1) -> TunnelState:
    """One tunnel of ``connectors`` connectors (but ``skip``) with 4 connections each over two colos."""
    built = [
        Connector(
            id=f"w-{c:03d}",
            run_at=NOW - timedelta(minutes=c),
            conns=[Connection(id=f"x-{c:03d}-{n}", colo_name=("NRT", "DFW")[(c + n) % 2]) for n in range(4)],
        )
        for c in range(connectors)
        if c != skip
    ]
    return TunnelState(Tunnel(id="w", name="wide", status="healthy"), tuple(built))


async def test_a_filter_typed_and_cleared_on_a_wide_tunnel_ends_as_built_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many siblings come and go at once: each new node is placed by its index among them, not by a scan.
    monkeypatch.setattr("tunneltop.ui.client_tree._EXPAND_MAX", 10_000)
    full, less = wide(60), wide(60, skip=7)
    nrt = {f"w/{c.id}/{x.id}" for c in less.connectors for x in c.conns if x.colo_name == "NRT" and c.id < "w-030"}
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        for states, visible in (([less], None), ([less], nrt), ([full], nrt), ([full], None)):
            tree.show(tree.parts_for(states, visible, include_empty=visible is None), expand_connectors=True)
            await pilot.pause()
        updated = _shape(tree)
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for([full], None), expand_connectors=True)
        await pilot.pause()
        assert updated == _shape(tree)
    assert len(updated) == 1 + 60 + 240


async def test_the_connectors_of_a_very_large_tunnel_start_collapsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tunneltop.ui.client_tree._EXPAND_MAX", 100)
    async with TreeApp().run_test(size=(80, 30)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for([wide(30)], None), expand_connectors=True)
        await pilot.pause()
        assert conn_nodes(tree) == set(), "150 items: more than the limit, so no connection nodes until opened"
        tree.show(tree.parts_for([state(0)], None), expand_connectors=True)
        await pilot.pause()
        assert len(conn_nodes(tree)) == 8


def test_a_tunnel_of_more_connectors_than_the_tree_shows_keeps_the_ones_that_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tree keeps a few connectors of a huge tunnel: this host's, those not healthy, then the newest.
    monkeypatch.setattr("tunneltop.ui.tree_parts.CONNECTORS_SHOWN_MAX", 5)
    connectors = [
        Connector(
            id=f"w-{c:03d}",
            run_at=NOW - timedelta(minutes=c),
            # w-017, an old connector, has a connection pending reconnect
            conns=[Connection(id=f"x-{c:03d}-{n}", is_pending_reconnect=c == 17 and n == 0) for n in range(4)],
        )
        for c in range(20)
    ]
    huge = TunnelState(Tunnel(id="w", name="wide", status="healthy"), tuple(connectors))
    [part] = tree_parts([huge], None, this_host="w-019")
    shown = [item.ref.connector_id for item in part if item.ref.kind == "connector"]
    # In the tree's own order (oldest run first): this host's, the sick one, then the three newest.
    assert shown == ["w-019", "w-017", "w-002", "w-001", "w-000"]
    label = "".join(text for text, _ in part[0].label)
    assert "+15 more connectors" in label
    # A tree keeps each connector's need while it is the same object: a poll that changes one works out one.
    memo = TreeParts()
    assert memo.parts([huge], None, this_host="w-019") == [part]
    kept = dict(memo._needs)
    assert len(kept) == 20
    newer = connectors[3].model_copy(update={"run_at": NOW + timedelta(minutes=1)})  # w-003 restarted
    again = TunnelState(huge.tunnel, (*connectors[:3], newer, *connectors[4:]))
    [moved] = memo.parts([again], None, this_host="w-019")
    assert [i.ref.connector_id for i in moved if i.ref.kind == "connector"] == [
        "w-019", "w-017", "w-001", "w-000", "w-003"
    ]
    assert all(memo._needs[c][1] is kept[c][1] for c in kept if c != "w-003")
    # A filter brings any connector into the tree: its connections are the ones that match.
    [part] = tree_parts([huge], {"w/w-010/x-010-1"}, include_empty=False)
    assert [item.ref.node_id for item in part] == ["w", "w/w-010", "w/w-010/x-010-1"]
    assert "more connectors" not in "".join(text for text, _ in part[0].label)


async def test_new_nodes_off_screen_are_measured_unbuilt_and_one_show_asks_one_repaint() -> None:
    # A filter cleared adds hundreds of nodes: their labels are built only when drawn or read, their widths are
    # measured from the label's parts, and the edits ask for one repaint, not one per node.
    states = [state(t) for t in range(30)]
    async with TreeApp().run_test(size=(60, 10)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        passed: list[bool] = []  # the layout flag of each refresh that got through to Textual
        original = ClientTree.refresh

        def counting(self: ClientTree, *regions: Region, **kwargs: bool) -> ClientTree:
            if self._held is None:
                passed.append(bool(kwargs.get("layout")))
            return original(self, *regions, **kwargs)

        tree.refresh = counting.__get__(tree)  # type: ignore[method-assign]
        tree.show(tree.parts_for(states, None), expand_connectors=True)
        assert passed == [True], "one repaint (with the layout Tree asked for) for the whole show"
        await pilot.pause()
        held = tree.node_for("t-29/c-29-1/conn-29-1-3")
        assert held is not None and held._id in tree._stale, "off screen: its label is not built"
        width = tree.virtual_size.width
        shown = "\n".join(line.text for line in pilot.app.screen._compositor.render_strips())
        assert held.label.plain == "● LAX 192.0.2.1" and held._id not in tree._stale, "read: built then"
    async with TreeApp().run_test(size=(60, 10)) as pilot:
        tree = pilot.app.query_one(ClientTree)
        tree.show(tree.parts_for(states, None), expand_connectors=True)
        _shape(tree)  # every label read, so built, before the tree first measures its lines
        await pilot.pause()
        assert not tree._stale
        assert tree.virtual_size.width == width
        assert "\n".join(line.text for line in pilot.app.screen._compositor.render_strips()) == shown
