"""A simulated Cloudflare account whose tunnels evolve over time.

The simulator holds raw, API-shaped dicts (Cloudflare's own field names) so that whatever serves them
(`cfapi.FakeCloudflare`) can hand them out verbatim. Everything is driven by one `random.Random(seed)`:
the same seed, start time and sequence of `advance()` times always give identical data, which is what
makes demo screenshots and tests repeatable.

Two scenarios:
- the hand-made *demo scenario* (`tunnels=None`): a handful of tunnels showing every status and the
  events tunneltop exists to make visible (drops, pending reconnects, failovers, joins, restarts);
- a generated *scale scenario* (`tunnels=N`) for benchmarks, e.g. 1,000 tunnels x 25 connectors x 4
  connections ~ 100,000 connections.

Addresses come from the documentation ranges (RFC 5737 / RFC 3849) so the stand-in never shows
somebody's real IP address.

One module (over ~400 lines) because every scenario draws from one seeded random stream: split, a change in
one would silently reorder the draws of the others (and every pinned demo screenshot).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

# Fixed (seed-independent) so docs, the CLI and tests can name the demo account and its tunnels.
DEMO_ACCOUNT_ID = "d401b721bdb68293c10175ce41fce436"
DEMO_ACCOUNT_NAME = "Demo Account (simulated)"

TICK = timedelta(seconds=4)
# A jump of hours must not replay thousands of ticks: only the most recent ticks are simulated.
MAX_CATCHUP_TICKS = 50
# cloudflared's --ha-connections default: a healthy connector holds four connections.
HA_CONNECTIONS = 4
# How long the edge keeps tracking a dropped connection (is_pending_reconnect: true), in seconds.
PENDING_TTL = (60.0, 180.0)

STATUSES = ("inactive", "degraded", "healthy", "down")
# cloudflared's version is its release date (2025.8.1: August 2025) and tunneltop flags a release more than a year
# old, so the simulated versions are dated from the simulator's start, not fixed strings that age with the calendar:
# (months before the start, patch), oldest first, all within the supported year. ``OUTDATED_RELEASE`` is older on
# purpose: one demo connector runs it, so the old-release check has something to show.
RELEASE_AGES = ((11, 2), (9, 0), (7, 2), (6, 0), (3, 0), (1, 1))
OUTDATED_RELEASE = (15, 2)
BASE_FEATURES = ("ha-origin", "allow_remote_config", "serialized_headers", "support_datagram_v2",
                 "support_quic_eof", "management_logs")
ARCHES = ("linux_amd64", "linux_arm64", "darwin_arm64", "windows_amd64")

# Pools of nearby colos a connector in a region lands in; replacements and failovers stay in the pool.
COLO_POOLS: dict[str, tuple[str, ...]] = {
    "us-central": ("DFW", "LAX", "IAH", "ORD"),
    "us-west": ("SEA", "SJC", "PDX", "LAX"),
    "us-east": ("IAD", "EWR", "ORD", "ATL"),
    "eu": ("AMS", "FRA", "LHR", "CDG"),
    "apac": ("SIN", "NRT", "HKG", "SYD"),
}

# Demo tunnel ids: fixed so they can be quoted; connector and connection ids come from the seed.
DEMO_TUNNELS: dict[str, str] = {
    "web-prod": "1edea7e3-ecd5-405e-831d-a95fc6c1832c",
    "api-staging": "4a868941-f04c-4ace-a942-719949d2c6e2",
    "k8s-ingress-eu": "b39c565f-e592-44b9-8ada-80401df392a4",
    "home-lab": "61613a82-28b4-41b3-b070-1323a754018a",
    "batch-etl": "4998f5ea-1bc8-45af-98bf-3e5123acd611",
    "office-router-new": "286b8942-6f12-44c3-a503-47fee35afa62",
    "old-blog": "f4d5ee1e-729b-4a25-91b5-02e08a71e595",
}


# Private networks: a fixed namespace for the ids of routes and virtual networks, so that they take nothing from the
# seeded generator (the connectors' and connections' ids stay what they were before routes existed).
_TEAMNET = uuid.UUID("7c1e6a52-0d7e-4c8e-9b64-5a0f3e1d2c4b")
DEFAULT_VNET = "default"
SCENARIOS = ("drift", "lost-redundancy")


def release(start: datetime, months_before: int, patch: int) -> str:
    """The cloudflared version released ``months_before`` months before ``start`` (``2025.8.1``)."""
    month = start.year * 12 + start.month - 1 - months_before
    return f"{month // 12}.{month % 12 + 1}.{patch}"


def teamnet_id(*parts: str) -> str:
    return str(uuid.uuid5(_TEAMNET, "/".join(parts)))


def rfc3339(moment: datetime) -> str:
    """Cloudflare's timestamp style: UTC, microseconds, trailing Z."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat is several times faster than strftime, which matters for 100k-connection builds.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def derive_status(clients: list[dict[str, Any]], ever_connected: bool) -> str:
    """Tunnel status from its connectors, as Cloudflare documents it.

    inactive = never ran; down = nothing active; degraded = serving but a connection failed (a pending
    one, or a connector short of its four); healthy otherwise. A connection whose is_pending_reconnect
    is missing counts as not active: unknown is never assumed to be serving.
    """
    if not clients and not ever_connected:
        return "inactive"
    active_total = 0
    degraded = False
    for client in clients:
        active = 0
        for conn in client.get("conns") or ():
            if conn.get("is_pending_reconnect") is False:
                active += 1
            else:
                degraded = True
        if active < HA_CONNECTIONS:
            degraded = True
        active_total += active
    if active_total == 0:
        return "down"
    return "degraded" if degraded else "healthy"


@dataclass
class _Plan:
    """Simulation knobs for one connector (not API data): where it lands and how it behaves."""

    pool: tuple[str, ...]
    origin_ip: str
    flapping: bool = False


@dataclass
class _TunnelSim:
    """Simulation knobs for one tunnel: which events may happen to it."""

    role: str  # steady | flappy | elastic | static | scale | manual
    remote: bool = False
    config_version: int = 0
    config_created_at: datetime | None = None
    ingress: list[dict[str, Any]] = field(default_factory=list)
    # elastic tunnels: one connector that joins and leaves on a schedule
    elastic_template: dict[str, Any] | None = None
    elastic_client: str | None = None
    next_toggle: datetime | None = None


class SimulatedAccount:
    """One simulated Cloudflare account whose tunnels change over simulated time."""

    def __init__(
        self,
        seed: int = 7,
        start: datetime | None = None,
        tunnels: int | None = None,
        connectors_per_tunnel: int = 2,
        *,
        embed_connections: bool = False,
    ) -> None:
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.seed = seed
        self.start = start
        # Upgrades walk this list; scale tunnels pick from it.
        self.versions = tuple(release(start, months, patch) for months, patch in RELEASE_AGES)
        self.frozen = False
        # Cloudflare deprecated the tunnel object's `connections` ("will start returning an empty
        # array"); the default follows that so nothing in tunneltop comes to rely on it.
        self.embed_connections = embed_connections
        self.tick_count = 0
        self.account_id = DEMO_ACCOUNT_ID
        self.account_name = DEMO_ACCOUNT_NAME if tunnels is None else f"Scale Account (simulated, {tunnels})"
        self._rng = Random(seed)
        self._now = start
        self._tick_at = start
        self._tunnels: dict[str, dict[str, Any]] = {}
        self._clients: dict[str, list[dict[str, Any]]] = {}
        self._sims: dict[str, _TunnelSim] = {}
        self._plans: dict[str, _Plan] = {}
        self._client_index: dict[str, tuple[str, dict[str, Any]]] = {}
        self._pending: dict[str, tuple[datetime, str, str]] = {}  # conn id -> (expires, tunnel, client)
        self._reopen: list[tuple[datetime, str, str]] = []  # (when, tunnel, client): delayed replacement
        self._dirty: set[str] = set()
        self._scale_live: list[str] = []
        self._evented: list[str] = []  # demo tunnels with their own event rules
        self._vnets: list[dict[str, Any]] = [self._vnet(DEFAULT_VNET, start - timedelta(days=1400), default=True)]
        self._routes: list[dict[str, Any]] = []
        if tunnels is None:
            self._build_demo()
        else:
            self._build_scale(tunnels, connectors_per_tunnel)
        for tid in self._tunnels:
            self._refresh(tid, start)
        self._dirty.clear()

    # ------------------------------------------------------------------ read accessors (copies)

    @property
    def now(self) -> datetime:
        return self._now

    def accounts(self) -> list[dict[str, Any]]:
        return [{
            "id": self.account_id,
            "name": self.account_name,
            "type": "standard",
            "settings": {"enforce_twofactor": False, "api_access_enabled": None,
                         "access_approval_expiry": None},
            "created_at": rfc3339(self.start - timedelta(days=1400)),
        }]

    def tunnel_ids(self, include_deleted: bool = False) -> list[str]:
        return [tid for tid, t in self._tunnels.items() if include_deleted or t["deleted_at"] is None]

    def has_tunnel(self, tunnel_id: str) -> bool:
        return tunnel_id in self._tunnels

    def list_tunnels(self) -> list[dict[str, Any]]:
        """Every tunnel, deleted ones included (the API's is_deleted filter is the handler's job)."""
        return copy.deepcopy(list(self.iter_tunnels()))

    def get_tunnel(self, tunnel_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._view(tunnel_id))

    def clients(self, tunnel_id: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.live_clients(tunnel_id))

    def get_client(self, tunnel_id: str, client_id: str) -> dict[str, Any]:
        for client in self.live_clients(tunnel_id):
            if isinstance(client, dict) and client.get("id") == client_id:
                return copy.deepcopy(client)
        raise KeyError(client_id)

    def configuration(self, tunnel_id: str) -> dict[str, Any]:
        tunnel = self._tunnels[tunnel_id]
        sim = self._sims[tunnel_id]
        if not sim.remote:
            # Locally managed: the dashboard holds no configuration for it.
            return {"tunnel_id": tunnel_id, "account_id": self.account_id, "config": None,
                    "version": 0, "source": "local", "created_at": tunnel["created_at"]}
        return {
            "tunnel_id": tunnel_id,
            "account_id": self.account_id,
            "config": {"ingress": copy.deepcopy(sim.ingress), "warp-routing": {"enabled": False}},
            "version": sim.config_version,
            "source": "cloudflare",
            "created_at": rfc3339(sim.config_created_at or self.start),
        }

    def virtual_networks(self) -> list[dict[str, Any]]:
        """The account's virtual networks (deleted ones included: the handler filters)."""
        return self._vnets

    def routes(self) -> list[dict[str, Any]]:
        """The account's private network routes, as ``GET /teamnet/routes`` lists them (deleted ones included)."""
        names = {v["id"]: v["name"] for v in self._vnets}
        return [
            {**route, "tunnel_name": self._tunnels[route["tunnel_id"]]["name"],
             "virtual_network_name": names.get(route["virtual_network_id"])}
            for route in self._routes
        ]

    def add_route(self, tunnel_id: str, network: str, *, comment: str = "", vnet: str = DEFAULT_VNET,
                  deleted: bool = False) -> dict[str, Any]:
        """A private network route through the tunnel, in the virtual network named ``vnet`` (made if new)."""
        vnet_id = next((v["id"] for v in self._vnets if v["name"] == vnet), None)
        if vnet_id is None:
            self._vnets.append(self._vnet(vnet, self._now - timedelta(days=30)))
            vnet_id = self._vnets[-1]["id"]
        route = {
            "id": teamnet_id("route", tunnel_id, network, vnet),
            "network": network,
            "tunnel_id": tunnel_id,
            "tun_type": "cfd_tunnel",
            "virtual_network_id": vnet_id,
            "comment": comment,
            "created_at": rfc3339(self._now - timedelta(days=20)),
            "deleted_at": rfc3339(self._now) if deleted else None,
        }
        self._routes.append(route)
        return route

    def _vnet(self, name: str, created: datetime, *, default: bool = False) -> dict[str, Any]:
        return {"id": teamnet_id("vnet", name), "name": name, "is_default_network": default,
                "comment": "" if default else f"{name} network", "created_at": rfc3339(created), "deleted_at": None}

    # ------------------------------------------------------------------ scenarios

    def scenario(self, name: str, tunnel_id: str | None = None) -> None:
        """Switch on what a test or the demo wants to show (``SCENARIOS``), on ``tunnel_id`` (default: web-prod).

        - ``drift``: the remote configuration is pushed (its version goes up) and one connector keeps running the
          old one (its ``config_version`` stays behind);
        - ``lost-redundancy``: one connector left, its connections all in one colo (still "healthy" to the API).
        The tunnel stops evolving, so that what was switched on stays."""
        tid = tunnel_id or DEMO_TUNNELS["web-prod"]
        sim = self._sims[tid]
        clients = [c for c in self._clients[tid] if isinstance(c, dict)]
        if name == "drift":
            if not sim.remote:
                raise ValueError("config drift needs a remotely managed tunnel")
            sim.config_version += 1
            sim.config_created_at = self._now
            for client in clients[1:]:
                client["config_version"] = sim.config_version
        elif name == "lost-redundancy":
            self._clients[tid] = clients[:1]
            for client in clients[1:]:
                self._client_index.pop(client["id"], None)
                self._plans.pop(client["id"], None)
            for conn in clients[0]["conns"] if clients else ():
                conn["colo_name"] = clients[0]["conns"][0]["colo_name"]
        else:
            raise ValueError(f"no scenario {name!r}: {', '.join(SCENARIOS)}")
        sim.role = "static"
        self._refresh(tid, self._now)

    def connection_count(self) -> int:
        return sum(len(c.get("conns") or ()) for cs in self._clients.values() for c in cs
                   if isinstance(c, dict))

    def connector_count(self) -> int:
        return sum(len(cs) for cs in self._clients.values())

    # Live (uncopied) views for the request handler, which only serialises them. Do not mutate.

    def iter_tunnels(self) -> Iterator[dict[str, Any]]:
        for tid in self._tunnels:
            yield self._view(tid)

    def live_clients(self, tunnel_id: str) -> list[dict[str, Any]]:
        if tunnel_id not in self._tunnels:
            raise KeyError(tunnel_id)
        return self._clients[tunnel_id]

    def _view(self, tunnel_id: str) -> dict[str, Any]:
        tunnel = self._tunnels[tunnel_id]
        if not self.embed_connections:
            return tunnel
        clients = [c for c in self._clients[tunnel_id] if isinstance(c, dict)]
        conns = [conn for c in clients for conn in c.get("conns") or ()]
        return {**tunnel, "connections": conns}

    # ------------------------------------------------------------------ test hooks

    def freeze(self) -> None:
        """Stop evolution: advance() still moves the clock, but no events happen."""
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    def add_tunnel(
        self,
        name: str,
        status: str = "healthy",
        clients: list[dict[str, Any]] | None = None,
        *,
        tunnel_id: str | None = None,
        remote_config: bool = False,
    ) -> dict[str, Any]:
        """Add a tunnel the simulation leaves alone. Without `clients`, connectors matching `status`
        are generated; with `clients`, they are stored verbatim and `status` is taken as given."""
        now = self._now
        tid = tunnel_id or self._uuid()
        active_at = inactive_at = None
        if status in ("healthy", "degraded"):
            active_at = now - timedelta(hours=1)
        elif status == "down":
            active_at, inactive_at = now - timedelta(hours=2), now - timedelta(hours=1)
        tunnel = self._tunnel_dict(tid, name, now - timedelta(days=3), remote_config, active_at, inactive_at)
        tunnel["status"] = status
        self._tunnels[tid] = tunnel
        self._sims[tid] = _TunnelSim(role="manual", remote=remote_config,
                                     config_version=1 if remote_config else 0,
                                     ingress=[{"hostname": f"{name}.example.com", "service": "http://localhost:80"},
                                              {"service": "http_status:404"}] if remote_config else [])
        self._clients[tid] = []
        if clients is not None:
            self._clients[tid] = clients
        elif status in ("healthy", "degraded"):
            plan = _Plan(COLO_POOLS["us-east"], self._ipv4())
            client = self._new_client(tid, plan, "2025.1.0", "linux_amd64", now - timedelta(hours=1),
                                      self._sims[tid].config_version, ("IAD", "EWR"))
            if status == "degraded":
                client["conns"][-1]["is_pending_reconnect"] = True
            self._clients[tid].append(client)
        return copy.deepcopy(tunnel)

    def delete_tunnel(self, tunnel_id: str) -> None:
        """Delete like Cloudflare: deleted_at set, connections cleaned up, kept for is_deleted=true."""
        tunnel = self._tunnels[tunnel_id]
        self._forget_connectors(tunnel_id)
        self._clients[tunnel_id] = []
        self._sims[tunnel_id].role = "static"
        tunnel["deleted_at"] = rfc3339(self._now)
        self._refresh(tunnel_id, self._now)

    def set_clients(self, tunnel_id: str, clients: list[dict[str, Any]], *,
                    status: str | None = None) -> None:
        """Replace a tunnel's connectors verbatim (drifted or hostile records welcome). The tunnel stops
        evolving; its status changes only if `status` is given."""
        if tunnel_id not in self._tunnels:
            raise KeyError(tunnel_id)
        self._forget_connectors(tunnel_id)
        self._clients[tunnel_id] = clients
        self._sims[tunnel_id].role = "manual"
        if status is not None:
            self._tunnels[tunnel_id]["status"] = status

    def _forget_connectors(self, tunnel_id: str) -> None:
        for client in self._clients.get(tunnel_id, ()):
            client_id = client.get("id") if isinstance(client, dict) else None
            if isinstance(client_id, str):
                self._client_index.pop(client_id, None)
                self._plans.pop(client_id, None)
        self._pending = {k: v for k, v in self._pending.items() if v[1] != tunnel_id}
        self._reopen = [r for r in self._reopen if r[1] != tunnel_id]

    # ------------------------------------------------------------------ time

    def advance(self, now: datetime) -> None:
        """Apply every tick between the last advance and `now` (at most MAX_CATCHUP_TICKS of them)."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        if now <= self._now:
            return
        self._now = now
        ticks = int((now - self._tick_at) / TICK)
        if ticks <= 0:
            return
        if self.frozen:
            self._tick_at += ticks * TICK
            return
        if ticks > MAX_CATCHUP_TICKS:
            self._tick_at += (ticks - MAX_CATCHUP_TICKS) * TICK
            ticks = MAX_CATCHUP_TICKS
        for _ in range(ticks):
            self._tick_at += TICK
            self._tick(self._tick_at)

    def _tick(self, t: datetime) -> None:
        self.tick_count += 1
        rng = self._rng
        self._expire_pending(t)
        self._run_reopens(t)
        for tid in self._evented:
            sim = self._sims[tid]
            role = sim.role
            if role == "steady":
                if rng.random() < 0.003:
                    self._restart(tid, self._pick_client(tid), self._when(t))
                if rng.random() < 0.002:
                    self._upgrade(tid, self._pick_client(tid), self._when(t))
            elif role == "flappy":
                if rng.random() < 0.1:
                    clients = self._clients[tid]
                    weights = [3 if self._plans[c["id"]].flapping else 1 for c in clients]
                    client = rng.choices(clients, weights)[0] if clients else None
                    immediate = 0.4 if client and self._plans[client["id"]].flapping else 0.7
                    self._drop(tid, client, self._when(t), rng.random() < immediate)
                if rng.random() < 0.002:
                    self._upgrade(tid, self._pick_client(tid), self._when(t))
            elif role == "elastic":
                if sim.next_toggle is not None and t >= sim.next_toggle:
                    self._toggle_elastic(tid, sim, self._when(t))
                if rng.random() < 0.04:
                    self._failover(tid, self._pick_client(tid, skip=sim.elastic_client), self._when(t))
                if rng.random() < 0.003:
                    self._upgrade(tid, self._pick_client(tid), self._when(t))
        if self._scale_live:
            self._scale_events(t)
        # Tunnel order, not set order: set order varies between processes and would break determinism.
        for tid in [tid for tid in self._tunnels if tid in self._dirty]:
            self._refresh(tid, t)
            sim = self._sims[tid]
            # The demo's degraded tunnel must stay degraded: its flapping connector fails again.
            if sim.role == "flappy" and self._tunnels[tid]["status"] == "healthy":
                flapper = next(c for c in self._clients[tid] if self._plans[c["id"]].flapping)
                self._drop(tid, flapper, t, replace=False)
                self._refresh(tid, t)
        self._dirty.clear()

    def _when(self, t: datetime) -> datetime:
        """An event instant inside the tick that ends at t (so timestamps don't all sit on the grid)."""
        return t - timedelta(seconds=self._rng.uniform(0.0, TICK.total_seconds()))

    # ------------------------------------------------------------------ events

    def _pick_client(self, tid: str, skip: str | None = None) -> dict[str, Any] | None:
        clients = [c for c in self._clients[tid] if c["id"] != skip]
        return self._rng.choice(clients) if clients else None

    def _other_colo(self, plan: _Plan, current: str) -> str:
        choices = [c for c in plan.pool if c != current]
        return self._rng.choice(choices) if choices else current

    def _drop(self, tid: str, client: dict[str, Any] | None, t: datetime, replace: bool) -> None:
        """A connection drops: the edge keeps it as pending for a few minutes; cloudflared reconnects,
        often to another colo, at once or a little later."""
        if client is None:
            return
        active = [c for c in client["conns"] if c["is_pending_reconnect"] is False]
        if not active:
            return
        conn = self._rng.choice(active)
        conn["is_pending_reconnect"] = True
        expires = t + timedelta(seconds=self._rng.uniform(*PENDING_TTL))
        self._pending[conn["id"]] = (expires, tid, client["id"])
        if replace:
            self._open_conn(client, self._replacement_colo(client, conn["colo_name"]), t)
        else:
            self._reopen.append((t + timedelta(seconds=self._rng.uniform(8.0, 24.0)), tid, client["id"]))
        self._dirty.add(tid)

    def _replacement_colo(self, client: dict[str, Any], colo: str) -> str:
        plan = self._plans[client["id"]]
        return self._other_colo(plan, colo) if self._rng.random() < 0.55 else colo

    def _expire_pending(self, t: datetime) -> None:
        expired = [cid for cid, (when, _, _) in self._pending.items() if when <= t]
        for conn_id in expired:
            _, tid, client_id = self._pending.pop(conn_id)
            entry = self._client_index.get(client_id)
            if entry is None:
                continue
            client = entry[1]
            client["conns"] = [c for c in client["conns"] if c["id"] != conn_id]
            self._dirty.add(tid)

    def _run_reopens(self, t: datetime) -> None:
        due = [r for r in self._reopen if r[0] <= t]
        if not due:
            return
        self._reopen = [r for r in self._reopen if r[0] > t]
        for when, tid, client_id in due:
            entry = self._client_index.get(client_id)
            if entry is None:
                continue
            client = entry[1]
            active = [c for c in client["conns"] if c["is_pending_reconnect"] is False]
            if len(active) < HA_CONNECTIONS:
                plan = self._plans[client_id]
                self._open_conn(client, self._rng.choice(plan.pool[:2]), when)
                self._dirty.add(tid)

    def _restart(self, tid: str, client: dict[str, Any] | None, t: datetime,
                 version: str | None = None) -> None:
        """cloudflared restarts (a config push or an upgrade): new run_at, all new connections."""
        if client is None:
            return
        sim = self._sims[tid]
        if sim.remote:
            sim.config_version += 1
            sim.config_created_at = t
            for other in self._clients[tid]:
                other["config_version"] = sim.config_version
        if version is not None:
            client["version"] = version
        client["run_at"] = rfc3339(t)
        for conn in client["conns"]:
            self._pending.pop(conn["id"], None)
        colos = [c["colo_name"] for c in client["conns"] if c["is_pending_reconnect"] is False]
        plan = self._plans[client["id"]]
        colos = (colos + list(plan.pool[:2]) * HA_CONNECTIONS)[:HA_CONNECTIONS]
        client["conns"] = []
        for colo in colos:
            self._open_conn(client, colo, t + timedelta(milliseconds=self._rng.uniform(200, 1500)))
        self._dirty.add(tid)

    def _upgrade(self, tid: str, client: dict[str, Any] | None, t: datetime) -> None:
        if client is None or client["version"] not in self.versions:
            return
        index = self.versions.index(client["version"])
        if index + 1 < len(self.versions):
            self._restart(tid, client, t, self.versions[index + 1])

    def _failover(self, tid: str, client: dict[str, Any] | None, t: datetime) -> None:
        """A colo fails over: every connection this connector holds there moves to another colo."""
        if client is None:
            return
        used = sorted({c["colo_name"] for c in client["conns"] if c["is_pending_reconnect"] is False})
        if not used:
            return
        source = self._rng.choice(used)
        plan = self._plans[client["id"]]
        targets = [c for c in plan.pool if c not in used] or [c for c in plan.pool if c != source]
        if not targets:
            return
        target = self._rng.choice(targets)
        moving = [c for c in client["conns"]
                  if c["colo_name"] == source and c["is_pending_reconnect"] is False]
        client["conns"] = [c for c in client["conns"] if c not in moving]
        for _ in moving:
            self._open_conn(client, target, t + timedelta(milliseconds=self._rng.uniform(50, 900)))
        self._dirty.add(tid)

    def _toggle_elastic(self, tid: str, sim: _TunnelSim, t: datetime) -> None:
        """The autoscaled connector leaves (gracefully: its connections go with it) or a new one joins."""
        if sim.elastic_client is not None:
            client_id = sim.elastic_client
            self._clients[tid] = [c for c in self._clients[tid] if c["id"] != client_id]
            self._client_index.pop(client_id, None)
            self._plans.pop(client_id, None)
            sim.elastic_client = None
            sim.next_toggle = t + timedelta(seconds=self._rng.uniform(30, 90))
        else:
            tpl = sim.elastic_template or {}
            plan = _Plan(tpl["pool"], tpl["ip"])
            client = self._new_client(tid, plan, tpl["version"], tpl["arch"], t, sim.config_version,
                                      tpl["colos"])
            self._clients[tid].append(client)
            sim.elastic_client = client["id"]
            sim.next_toggle = t + timedelta(seconds=self._rng.uniform(60, 150))
        self._dirty.add(tid)

    def _scale_events(self, t: datetime) -> None:
        """Scale scenario: a few random events per tick across the account (cost per tick ~ events)."""
        rng = self._rng
        for _ in range(max(1, len(self._scale_live) // 500)):
            tid = rng.choice(self._scale_live)
            if self._sims[tid].role != "scale":
                continue
            client = self._pick_client(tid)
            roll = rng.random()
            when = self._when(t)
            if roll < 0.7:
                self._drop(tid, client, when, rng.random() < 0.8)
            elif roll < 0.85:
                self._failover(tid, client, when)
            elif roll < 0.95:
                self._restart(tid, client, when)
            else:
                self._upgrade(tid, client, when)

    def _refresh(self, tid: str, t: datetime) -> None:
        """Re-derive status and keep conns_active_at / conns_inactive_at coherent with it."""
        tunnel = self._tunnels[tid]
        if self._sims[tid].role == "manual":
            return
        status = derive_status(self._clients[tid], tunnel["conns_active_at"] is not None)
        if status in ("healthy", "degraded"):
            if tunnel["conns_active_at"] is None or tunnel["conns_inactive_at"] is not None:
                tunnel["conns_active_at"] = rfc3339(t)
                tunnel["conns_inactive_at"] = None
        elif status == "down" and tunnel["conns_inactive_at"] is None:
            tunnel["conns_inactive_at"] = rfc3339(t)
        tunnel["status"] = status

    # ------------------------------------------------------------------ construction

    def _uuid(self) -> str:
        # Version-4 layout from the seeded generator (uuid.uuid4 would ignore the seed).
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _ipv4(self) -> str:
        net = self._rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return f"{net}.{self._rng.randint(1, 254)}"

    def _tunnel_dict(self, tid: str, name: str, created: datetime, remote: bool,
                     active_at: datetime | None, inactive_at: datetime | None) -> dict[str, Any]:
        return {
            "id": tid,
            "account_tag": self.account_id,
            "created_at": rfc3339(created),
            "deleted_at": None,
            "name": name,
            "connections": [],
            "conns_active_at": rfc3339(active_at) if active_at else None,
            "conns_inactive_at": rfc3339(inactive_at) if inactive_at else None,
            "tun_type": "cfd_tunnel",
            "metadata": {},
            "status": "inactive",
            "remote_config": remote,
            "config_src": "cloudflare" if remote else "local",
        }

    def _new_client(self, tid: str, plan: _Plan, version: str, arch: str, run_at: datetime,
                    config_version: int, colos: tuple[str, ...], conns: int = HA_CONNECTIONS,
                    features: tuple[str, ...] = BASE_FEATURES) -> dict[str, Any]:
        client = {
            "id": self._uuid(),
            "features": list(features),
            "version": version,
            "arch": arch,
            "config_version": config_version,
            "run_at": rfc3339(run_at),
            "conns": [],
        }
        self._plans[client["id"]] = plan
        self._client_index[client["id"]] = (tid, client)
        for i in range(conns):
            # cloudflared spreads its connections over two regions: 0,2 -> first colo, 1,3 -> second.
            self._open_conn(client, colos[i % len(colos)], run_at + timedelta(milliseconds=150 + 220 * i))
        return client

    def _open_conn(self, client: dict[str, Any], colo: str, opened: datetime) -> None:
        conn_id = self._uuid()
        client["conns"].append({
            "colo_name": colo,
            "id": conn_id,
            "is_pending_reconnect": False,
            "origin_ip": self._plans[client["id"]].origin_ip,
            "opened_at": rfc3339(opened),
            "client_id": client["id"],
            "client_version": client["version"],
            "uuid": conn_id,
        })

    def _add(self, tid: str, name: str, sim: _TunnelSim, created: datetime,
             active_at: datetime | None = None, inactive_at: datetime | None = None) -> dict[str, Any]:
        self._tunnels[tid] = self._tunnel_dict(tid, name, created, sim.remote, active_at, inactive_at)
        self._sims[tid] = sim
        self._clients[tid] = []
        if sim.role in ("steady", "flappy", "elastic"):
            self._evented.append(tid)
        return self._tunnels[tid]

    def _build_demo(self) -> None:
        s = self.start
        versions = self.versions
        ids = DEMO_TUNNELS
        ingress = [
            {"hostname": "www.example.com", "service": "http://localhost:8080", "originRequest": {}},
            {"hostname": "api.example.com", "service": "http://localhost:9000", "originRequest": {}},
            {"hostname": "example.com", "path": "/status", "service": "http://localhost:8081", "originRequest": {}},
            {"service": "http_status:404"},
        ]

        # Healthy: 2 connectors x 4 connections over 2 colos each (2xDFW, 2xLAX).
        tid = ids["web-prod"]
        sim = _TunnelSim("steady", remote=True, config_version=12, config_created_at=s - timedelta(days=2),
                         ingress=ingress)
        self._add(tid, "web-prod", sim, s - timedelta(days=210), s - timedelta(days=9))
        for arch, ip, age in (("linux_amd64", "203.0.113.10", 9), ("linux_amd64", "203.0.113.11", 6)):
            self._clients[tid].append(self._new_client(
                tid, _Plan(COLO_POOLS["us-central"], ip), versions[3], arch,
                s - timedelta(days=age, hours=3), sim.config_version, ("DFW", "LAX")))

        # Degraded: one connector keeps losing a connection (pending reconnects come and go).
        tid = ids["api-staging"]
        sim = _TunnelSim("flappy", remote=True, config_version=4, config_created_at=s - timedelta(days=20),
                         ingress=[{"hostname": "api-staging.example.com", "service": "http://localhost:9000",
                                   "originRequest": {"connectTimeout": 10}}, {"service": "http_status:404"}])
        self._add(tid, "api-staging", sim, s - timedelta(days=95), s - timedelta(days=3))
        # The steady one runs a release more than a year old (old_release): nobody upgraded it.
        steady = self._new_client(tid, _Plan(COLO_POOLS["eu"], "198.51.100.23"), release(s, *OUTDATED_RELEASE),
                                  "linux_arm64",
                                  s - timedelta(days=3, hours=1), 4, ("AMS", "FRA"))
        flapper_plan = _Plan(COLO_POOLS["eu"], "198.51.100.87", flapping=True)
        flapper = self._new_client(tid, flapper_plan, versions[0], "windows_amd64",
                                   s - timedelta(hours=5), 4, ("AMS", "FRA"))
        self._clients[tid] += [steady, flapper]
        self._drop(tid, flapper, s - timedelta(seconds=40), replace=False)

        # Big and healthy: three steady connectors plus one autoscaled that joins and leaves.
        tid = ids["k8s-ingress-eu"]
        sim = _TunnelSim("elastic", remote=True, config_version=31, config_created_at=s - timedelta(hours=7),
                         ingress=[{"hostname": "*.apps.example.com", "service": "https://ingress-nginx:443",
                                   "originRequest": {"noTLSVerify": True}}, {"service": "http_status:404"}])
        self._add(tid, "k8s-ingress-eu", sim, s - timedelta(days=400), s - timedelta(days=30))
        for arch, ip, colos, age in (
            ("linux_amd64", "192.0.2.41", ("AMS", "FRA"), timedelta(days=4)),
            ("linux_arm64", "192.0.2.42", ("LHR", "CDG"), timedelta(days=4, hours=2)),
            ("linux_amd64", "2001:db8:4e7a:12::2f", ("FRA", "LHR"), timedelta(hours=19)),
        ):
            self._clients[tid].append(self._new_client(
                tid, _Plan(COLO_POOLS["eu"], ip), versions[4], arch, s - age, sim.config_version, colos))
        sim.elastic_template = {"pool": COLO_POOLS["eu"], "ip": "192.0.2.77", "version": versions[4],
                                "arch": "linux_arm64", "colos": ("AMS", "CDG")}
        sim.elastic_client = None
        self._toggle_elastic(tid, sim, s - timedelta(minutes=2))
        sim.next_toggle = s + timedelta(seconds=20)  # the first visible change comes early

        # Healthy, small: one Mac at home (IPv4) on a locally managed config.
        tid = ids["home-lab"]
        sim = _TunnelSim("steady")
        self._add(tid, "home-lab", sim, s - timedelta(days=60), s - timedelta(days=1))
        self._clients[tid].append(self._new_client(
            tid, _Plan(COLO_POOLS["us-west"], "198.51.100.140"), versions[5], "darwin_arm64",
            s - timedelta(days=1, hours=2), 0, ("SEA", "SJC"),
            features=(*BASE_FEATURES, "support_datagram_v3_2")))

        # Down: it ran, cloudflared stopped two hours ago.
        self._add(ids["batch-etl"], "batch-etl", _TunnelSim(
            "static", remote=True, config_version=7, config_created_at=s - timedelta(days=40),
            ingress=[{"hostname": "etl.example.com", "service": "http://localhost:8088"},
                     {"service": "http_status:404"}]),
            s - timedelta(days=150), s - timedelta(days=2), s - timedelta(hours=2))
        # Inactive: created, never run.
        self._add(ids["office-router-new"], "office-router-new", _TunnelSim(
            "static", remote=True, config_version=1, config_created_at=s - timedelta(hours=20),
            ingress=[{"service": "http_status:404"}]), s - timedelta(hours=20))
        # Private networks behind them (home-lab's in a virtual network of its own).
        self._now = s - timedelta(days=1)
        self.add_route(ids["web-prod"], "10.10.0.0/16", comment="prod VPC")
        self.add_route(ids["web-prod"], "10.11.0.0/24", comment="prod databases")
        self.add_route(ids["web-prod"], "10.12.0.0/24", comment="retired subnet", deleted=True)
        self.add_route(ids["api-staging"], "10.20.0.0/24", comment="staging")
        self.add_route(ids["k8s-ingress-eu"], "10.96.0.0/12", comment="cluster services")
        self.add_route(ids["k8s-ingress-eu"], "fd00:96::/108")
        self.add_route(ids["home-lab"], "192.168.1.0/24", comment="home LAN", vnet="home")
        self.add_route(ids["batch-etl"], "172.16.40.0/24", comment="ETL workers")
        self._now = s
        # Deleted: only listed when is_deleted is not false.
        old = self._add(ids["old-blog"], "old-blog", _TunnelSim("static"), s - timedelta(days=700),
                        s - timedelta(days=500), s - timedelta(days=90))
        old["deleted_at"] = rfc3339(s - timedelta(days=89))

    def _build_scale(self, count: int, per_tunnel: int) -> None:
        """Generated tunnels: ~90% healthy, 6% degraded, 2% down, 2% inactive."""
        rng = self._rng
        s = self.start
        regions = list(COLO_POOLS.values())
        envs = ("prod", "stage", "dev")
        words = ("web", "api", "db", "cache", "queue", "auth", "shop", "search", "media", "metrics")
        for i in range(count):
            tid = self._uuid()
            name = f"{envs[i % 3]}-{words[(i // 3) % len(words)]}-{i:05d}"
            roll = rng.random()
            created = s - timedelta(days=30 + i % 300, seconds=i)
            if roll < 0.02:
                self._add(tid, name, _TunnelSim("static"), created)
                continue
            if roll < 0.04:
                self._add(tid, name, _TunnelSim("static"), created,
                          s - timedelta(days=5), s - timedelta(hours=3))
                continue
            sim = _TunnelSim("scale")
            self._add(tid, name, sim, created, s - timedelta(days=2))
            pool = regions[i % len(regions)]
            version = self.versions[rng.randrange(len(self.versions))]
            clients = self._clients[tid]
            for _ in range(per_tunnel):
                plan = _Plan(pool, self._ipv4())
                clients.append(self._new_client(tid, plan, version, ARCHES[rng.randrange(2)],
                                                s - timedelta(hours=rng.randint(1, 48)), 0, pool[:2]))
            if roll < 0.10 and clients:
                self._drop(tid, clients[0], s - timedelta(seconds=rng.uniform(5, 60)), replace=False)
            self._scale_live.append(tid)
