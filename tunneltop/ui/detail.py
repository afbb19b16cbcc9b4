"""The detail pane: everything about the selected connector or connection, with exact times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from tunneltop.model.findings import Finding
from tunneltop.model.health import active_conns, edge_summary, format_age, origin_ips, pending_conns
from tunneltop.model.reach import LocalReady, Reach
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.rules import CHECK_TITLES
from tunneltop.model.snapshot import TunnelState
from tunneltop.sanitize import clean
from tunneltop.ui.line_style import PassStyle
from tunneltop.ui.text import FINDING_GLYPH, FINDING_STYLE, MONO_STYLE, STATE_LABEL, health_text, restyle, safe
from tunneltop.ui.textual_internals import update_scrollbars


def _when(value: datetime | None, now: datetime) -> Text:
    if value is None:
        return Text("-")
    return Text(f"{value.strftime('%Y-%m-%d %H:%M:%S')}Z  ({format_age(now - value)} ago)")


def _text_key(text: Text) -> tuple[object, ...]:
    return (text.plain, str(text.style), tuple(text.spans))


class Detail:
    """Labelled rows under a title, drawn as a grid; equal when they would draw the same, so the pane can skip a
    redraw (each one lays out the whole screen again) when a poll changed nothing it shows."""

    def __init__(self, title: Text, rows: list[tuple[str, Text]]) -> None:
        self.title = title
        self.rows = rows
        self._key = (_text_key(title), tuple((label, _text_key(value)) for label, value in rows))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Detail) and self._key == other._key

    __hash__ = None  # type: ignore[assignment]

    def __rich__(self) -> RenderableType:
        return _draw(self.title, self.rows)

    def restyled(self, styles: dict[str, str]) -> Detail:
        """The same rows with the styles named in ``styles`` replaced (under NO_COLOR: see text.MONO_STYLE)."""
        return Detail(restyle(self.title, styles), [(label, restyle(value, styles)) for label, value in self.rows])


def _grid(title: Text, rows: list[tuple[str, Text]]) -> RenderableType:
    return Detail(title, rows)


def _draw(title: Text, rows: list[tuple[str, Text]]) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.title = title
    grid.title_justify = "left"
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _finding(finding: Finding) -> Text:
    """One finding as the pane's "why" says it: severity and check, the message with its numbers, the hint below.
    Wrapped, not cut: the hint is the part to read."""
    title = CHECK_TITLES.get(finding.check) or clean(finding.check, 32)
    return Text.assemble(
        (f"{FINDING_GLYPH[finding.severity]} {finding.severity.value}: {title}", FINDING_STYLE[finding.severity]),
        "\n",
        clean(finding.message, 400),
        "\n",
        (f"→ {clean(finding.hint, 400)}", "dim"),
    )


def _why(findings: tuple[Finding, ...]) -> list[tuple[str, Text]]:
    return [("why" if index == 0 else "", _finding(f)) for index, f in enumerate(findings)]


def _reach_rows(reach: Reach | None, now: datetime) -> list[tuple[str, Text]]:
    """What rides on the tunnel (its blast radius): public hostnames, private routes, and how old that is."""
    if reach is None:
        return [("hostnames", Text("not read yet (read on first sight, then every few minutes)", style="dim"))]
    rows: list[tuple[str, Text]] = []
    if reach.managed == "local":
        rows.append(("hostnames", Text("locally managed: hostnames are in the connector's config file", style="dim")))
    elif reach.managed == "cloudflare":
        names = "\n".join(clean(h, 200) for h in reach.hostnames[:50])
        if len(reach.hostnames) > 50:
            names += f"\n… and {len(reach.hostnames) - 50} more"
        rows.append(("hostnames", Text(names) if names else Text("none in its ingress rules", style="dim")))
        if reach.config_version is not None:
            rows.append(("remote config", Text(f"version {reach.config_version}")))
    else:
        rows.append(("hostnames", Text("unknown (never read)", style="dim")))
    routes = Text()
    for index, route in enumerate(reach.routes[:50]):
        routes.append("\n" if index else "")
        routes.append(clean(route.network, 60), style="bold")
        if route.virtual_network:
            routes.append(f"  vnet {clean(route.virtual_network, 60)}", style="cyan")
        if route.comment:
            routes.append(f"  {clean(route.comment, 120)}", style="dim")
    if len(reach.routes) > 50:
        routes.append(f"\n… and {len(reach.routes) - 50} more")
    rows.append(("routes", routes if routes.plain else Text("no private network routes", style="dim")))
    rows.append(("reach read", _when(reach.fetched_at, now)))
    if reach.error:
        rows.append(("reach error", Text(clean(reach.error, 300), style="red")))
    return rows


def tunnel_detail(state: TunnelState, now: datetime, trend: str = "") -> RenderableType:
    t = state.tunnel
    conns = [c for k in state.connectors or () for c in k.conns]
    rows = [
        ("tunnel id", safe(t.id)),
        ("health", health_text(state.health)),
        ("API status", safe(t.status)),
        ("connectors", Text(str(len(state.connectors or ())))),
        ("connections", Text(f"{state.active_count} active, {state.pending_count} pending reconnect")),
        ("edges", safe(edge_summary(conns) or None)),
        ("active trend", Text(trend or "-", style="cyan")),
        ("created", _when(t.created_at, now)),
        ("last active", _when(t.conns_active_at, now)),
        ("last inactive", _when(t.conns_inactive_at, now)),
    ]
    if t.deleted_at is not None:
        rows.insert(2, ("deleted", Text.assemble(("deleted ", "bold red"), _when(t.deleted_at, now))))
    if state.error:
        rows.append(("error", safe(state.error, "red", 300)))
    if state.error and state.connectors is not None and state.fetched_at is not None:
        rows.append(("shown as read", _when(state.fetched_at, now)))
    elif state.connectors is not None and state.fetched_at is not None:
        # Not refreshed by the last poll (the budget goes round): how old what is shown is.
        rows.append(("connections read", _when(state.fetched_at, now)))
    for problem in state.problems[:5]:
        rows.append(("data problem", safe(str(problem), "magenta", 300)))
    # Why first (what is wrong and what to look at), then what is at stake: both above the record's own fields.
    rows[2:2] = _why(state.findings) + _reach_rows(state.reach, now)
    return _grid(safe(f"Tunnel {t.name or t.id}", "bold"), rows)


def _this_host(connector: Connector, local: LocalReady) -> Text:
    api = len(active_conns(connector))
    ready = local.ready_connections
    said = "?" if ready is None else str(ready)
    style = "" if ready == api else "bold red" if ready == 0 and api else "yellow"
    return Text.assemble(
        (f"cloudflared here ({clean(local.address, 60)}) says {said} ready", style),
        f"; the API lists {api} active",
    )


def connector_detail(
    tunnel: Tunnel,
    connector: Connector,
    now: datetime,
    *,
    findings: tuple[Finding, ...] = (),
    local: LocalReady | None = None,
) -> RenderableType:
    """``findings``: the tunnel's findings about this connector; ``local``: cloudflared's /ready on this host, when
    it names this connector."""
    here = local is not None and local.connector_id == connector.id
    rows = [
        ("connector id", safe(connector.id)),
        ("tunnel", safe(tunnel.name or tunnel.id)),
        ("version", safe(connector.version)),
        ("arch", safe(connector.arch)),
        ("config version", safe(connector.config_version)),
        ("started", _when(connector.run_at, now)),
        ("uptime", Text(format_age(now - connector.run_at) if connector.run_at else "-")),
        ("origin IPs", safe(", ".join(origin_ips(connector)) or None, max_len=300)),
        ("edges", safe(edge_summary(connector.conns) or None)),
        ("pending", Text(str(len(pending_conns(connector))))),
        ("features", safe(", ".join(connector.features) or None, max_len=400)),
    ]
    mine = tuple(f for f in findings if f.connector_id == connector.id)
    rows[1:1] = ([("this host", _this_host(connector, local))] if here and local is not None else []) + _why(mine)
    title = safe(f"Connector {connector.id}", "bold")
    if here:
        title.append(" (this host)", style="bold cyan")
    return _grid(title, rows)


def connection_detail(
    tunnel: Tunnel, connector: Connector, conn: Connection, now: datetime, *, gone_at: datetime | None = None
) -> RenderableType:
    """``gone_at``: the connection has closed (a ghost row, ``ConnRow.gone_at``): its state is "gone", whatever
    the API last said of it."""
    state = "gone" if gone_at is not None else conn.state
    state_text, state_style = STATE_LABEL[state]
    rows = [
        ("connection id", safe(conn.id)),
        ("uuid", safe(conn.uuid)),
        ("state", Text(state_text, style=state_style)),
        ("colo", safe(conn.colo_name)),
        ("origin IP", safe(conn.origin_ip)),
        ("opened", _when(conn.opened_at, now)),
        ("client version", safe(conn.client_version)),
        ("connector", safe(conn.client_id or connector.id)),
        ("tunnel", safe(f"{tunnel.name or '-'} ({tunnel.id})")),
    ]
    if gone_at is not None:
        rows.insert(3, ("gone", _when(gone_at, now)))
        was = " (it was pending a reconnect)" if conn.state == "pending" else ""
        rows.append(("note", Text(f"closed: the API no longer lists this connection{was}; shown for a while")))
    elif conn.state == "pending":
        rows.append(("note", Text("the edge holds this dropped connection for a few minutes for a reconnect")))
    elif conn.state == "unknown":
        rows.append(("note", Text("the API did not say whether this connection is active or pending")))
    return _grid(safe(f"Connection {conn.id}", "bold"), rows)


class DetailPane(PassStyle, ScrollView, can_focus=True):
    """Shows whatever the app hands it; it never reaches for data itself.

    Its rows can outnumber its height (a connector's ``features`` are its 11th row; a tunnel with problems has more),
    so it takes focus (tab reaches it) and scrolls: arrows, j/k, page keys, home/end, the mouse wheel.

    Drawn line by line: the subject is rendered to lines once per subject and width, and a subject of another height
    only changes the scroll extent. A widget of its own height in a scrolling container made every such change three
    layouts of the whole screen in a row (the body, the pane's scroll extent, its scrollbar: 20-90 ms each at 10,000
    connections), on a move of the table's cursor. The scrollbar is always there (``overflow-y: scroll``), so the
    width the lines are rendered at never changes with the subject."""

    BINDINGS = [
        Binding("k", "scroll_up", "Scroll up", show=False),
        Binding("j", "scroll_down", "Scroll down", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    shown: RenderableType | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source: Widget | None = None  # the widget focused before this pane: what it describes while read
        self._lines: list[Strip] = []
        self._lines_width = 0  # the width ``_lines`` were rendered at

    def on_mount(self) -> None:
        self.watch(self.screen, "focused", self._focus_moved, init=False)

    def _focus_moved(self, before: Widget | None, after: Widget | None) -> None:
        if after is self and before is not None and before is not self:
            self.source = before

    def describes(self, focused: Widget | None) -> Widget | None:
        """Where the focus is, for what the pane should describe: while the pane itself has the focus (someone is
        reading it), the widget they came from."""
        return self.source if focused is self else focused

    def show(self, renderable: RenderableType | None) -> None:
        if renderable is None:
            renderable = Text("Select a tunnel, connector or connection.", style="dim")
        elif self.app.no_color and isinstance(renderable, Detail):
            renderable = renderable.restyled(MONO_STYLE)  # the health and error words stay readable
        if renderable == self.shown:
            return
        if _title(renderable) != _title(self.shown):
            self.scroll_home(animate=False, immediate=True)  # another subject: from its first row
        self.shown = renderable
        self._render_shown()

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._lines_width:
            self._render_shown()

    def _render_shown(self) -> None:
        width = self.scrollable_content_region.width
        self._lines_width = width
        if self.shown is None or width <= 0:
            self._lines = []
        else:
            console = self.app.console
            lines = console.render_lines(self.shown, console.options.update_width(width), pad=False)
            self._lines = [Strip(line) for line in lines]
        size = Size(width, len(self._lines))
        if size != self.virtual_size:
            # Only the scroll extent: no layout of the whole screen (the scrollbar is always shown).
            self.set_reactive(DetailPane.virtual_size, size)
            update_scrollbars(self, size)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.line_style()
        index = y + round(self.scroll_y)
        if index >= len(self._lines):
            return Strip.blank(width, base)
        return self._lines[index].apply_style(base).crop_extend(0, width, base)


def _title(renderable: RenderableType | None) -> str | None:
    return renderable.title.plain if isinstance(renderable, Detail) else None
