"""The headless output: exit status, the JSON document's shape, and a table that no API string can hijack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from tunneltop.model import Connection, Connector, Snapshot, Tunnel, TunnelState, parse_connectors
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.parse import RecordProblem
from tunneltop.model.reach import LocalReady, Reach, Route
from tunneltop.report import (
    EXIT_DEGRADED,
    EXIT_DOWN,
    EXIT_OK,
    EXIT_UNKNOWN,
    exit_status,
    render_json,
    render_table,
    status_line,
)
from tunneltop.sanitize import REPLACEMENT, clean

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "0123456789abcdef0123456789abcdef"
HOSTILE = "evil\x1b[31mRED\x1b]0;owned\x07\u202eflipped\u200b\r\nnext\x9b2J\x00"
RAW_CONTROLS = ["\x1b", "\x07", "\u202e", "\u200b", "\r", "\x9b", "\x00"]


def connector(kid: str = "k1", pending: int = 0, **fields: object) -> dict:
    conns = [
        {
            "id": f"{kid}-c{i}",
            "uuid": f"{kid}-c{i}",
            "client_id": kid,
            "client_version": "2025.2.0",
            "colo_name": ("DFW", "LAX")[i % 2],
            "origin_ip": "203.0.113.5",
            "opened_at": "2025-03-01T10:00:01Z",
            "is_pending_reconnect": i < pending,
        }
        for i in range(4)
    ]
    return {
        "id": kid,
        "arch": "linux_amd64",
        "version": "2025.2.0",
        "run_at": "2025-03-01T09:00:00Z",
        "config_version": 7,
        "features": ["ha-origin"],
        "conns": conns,
        **fields,
    }


def state(name: str = "web", status: str = "healthy", clients: list[dict] | None = None, **kw) -> TunnelState:
    parsed, problems = parse_connectors([connector()] if clients is None else clients)
    return TunnelState(Tunnel(id=f"id-{name}", name=name, status=status), tuple(parsed), tuple(problems), **kw)


def snap(*states: TunnelState, **kw) -> Snapshot:
    return Snapshot(ACCOUNT, NOW, states, **kw)


WARN = Finding("config_drift", Severity.WARNING, "connector k1 runs configuration version 2, remote 9", "restart it")
CRIT = Finding("required", Severity.CRITICAL, "inactive (never run), but required to run", "start it")


# -- exit status -----------------------------------------------------------------------------------------------


def test_all_healthy_is_0():
    assert exit_status(snap(state("a"), state("b"))) == EXIT_OK == 0


def test_any_pending_reconnect_is_1():
    assert exit_status(snap(state("a"), state("b", clients=[connector(pending=1)]))) == EXIT_DEGRADED == 1


def test_status_degraded_is_1():
    assert exit_status(snap(state("a", status="degraded"))) == 1


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: state("down", status="down", clients=[]), id="down"),
        pytest.param(lambda: state("gone", status="healthy", clients=[]), id="no-connectors"),
        pytest.param(lambda: state("new", status="inactive", clients=[], findings=(CRIT,)), id="required-inactive"),
        pytest.param(lambda: state("odd", findings=(WARN, CRIT)), id="critical-finding"),
    ],
)
def test_down_no_connectors_or_a_critical_finding_is_2_and_beats_degraded(bad):
    assert exit_status(snap(state("ok"), bad())) == EXIT_DOWN == 2
    assert exit_status(snap(state("deg", clients=[connector(pending=2)]), bad())) == 2


def test_an_inactive_tunnel_is_neutral():
    # Created and never run (a retired tunnel): 0 unless an expectation requires it (a critical finding, above).
    assert exit_status(snap(state("ok"), state("new", status="inactive", clients=[]))) == EXIT_OK


def test_a_warning_finding_is_1():
    assert exit_status(snap(state("ok"), state("old", findings=(WARN,)))) == EXIT_DEGRADED == 1


def test_unknown_is_3_and_beats_everything():
    unknown = TunnelState(Tunnel(id="t", name="x", status="healthy"), None, (), "Cloudflare answered HTTP 502")
    assert exit_status(snap(unknown)) == EXIT_UNKNOWN == 3
    assert exit_status(snap(state("down", status="down", clients=[]), unknown, state("crit", findings=(CRIT,)))) == 3


def test_no_tunnels_is_0():
    assert exit_status(snap()) == 0


# -- JSON ------------------------------------------------------------------------------------------------------

CONN_SCHEMA = {
    "type": "object",
    "required": ["id", "colo_name", "origin_ip", "opened_at", "is_pending_reconnect"],
    "properties": {
        "id": {"type": "string"},
        "colo_name": {"type": ["string", "null"]},
        "origin_ip": {"type": ["string", "null"]},
        "opened_at": {"type": ["string", "null"]},
        "is_pending_reconnect": {"type": ["boolean", "null"]},
    },
}
CLIENT_SCHEMA = {
    "type": "object",
    "required": ["id", "arch", "version", "run_at", "config_version", "features", "conns"],
    "properties": {
        "id": {"type": "string"},
        "arch": {"type": ["string", "null"]},
        "version": {"type": ["string", "null"]},
        "run_at": {"type": ["string", "null"]},
        "config_version": {"type": ["integer", "null"]},
        "features": {"type": "array", "items": {"type": "string"}},
        "conns": {"type": "array", "items": CONN_SCHEMA},
    },
}
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["account_id", "fetched_at", "tunnels"],
    "properties": {
        "demo": {"const": True},
        "account_id": {"type": "string"},
        "fetched_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"},
        "tunnels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "status", "health", "clients"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": ["string", "null"]},
                    "status": {"type": ["string", "null"]},
                    "health": {"enum": ["healthy", "degraded", "down", "inactive", "unknown"]},
                    "clients": {"oneOf": [{"type": "null"}, {"type": "array", "items": CLIENT_SCHEMA}]},
                },
            },
        },
    },
}


def test_json_document_shape_uses_the_apis_field_names():
    unknown = TunnelState(Tunnel(id="t9", name="lost", status="healthy"), None, (), "network down")
    doc = json.loads(render_json(snap(state("web", clients=[connector(pending=1)]), unknown)))
    jsonschema.validate(doc, DOCUMENT_SCHEMA)
    assert doc["account_id"] == ACCOUNT
    assert doc["fetched_at"] == "2025-03-01T12:00:00Z"
    assert "demo" not in doc
    web, lost = doc["tunnels"]
    assert (web["id"], web["name"], web["status"], web["health"]) == ("id-web", "web", "healthy", "degraded")
    [client] = web["clients"]
    assert client["id"] == "k1"
    assert client["run_at"] == "2025-03-01T09:00:00Z"
    assert client["config_version"] == 7
    assert client["features"] == ["ha-origin"]
    first = client["conns"][0]
    assert first == {
        "id": "k1-c0",
        "uuid": "k1-c0",
        "client_id": "k1",
        "client_version": "2025.2.0",
        "colo_name": "DFW",
        "origin_ip": "203.0.113.5",
        "opened_at": "2025-03-01T10:00:01Z",
        "is_pending_reconnect": True,
    }
    assert lost["clients"] is None
    assert lost["health"] == "unknown"
    assert lost["error"] == "network down"


def test_json_keeps_unknown_api_fields_and_missing_values_as_null():
    raw = connector(hostname="box-1")
    del raw["conns"][0]["is_pending_reconnect"]
    doc = json.loads(render_json(snap(state(clients=[raw]))))
    client = doc["tunnels"][0]["clients"][0]
    assert client["hostname"] == "box-1"
    assert client["conns"][0]["is_pending_reconnect"] is None


def test_json_demo_flag():
    doc = json.loads(render_json(snap(state()), demo=True))
    assert doc["demo"] is True
    assert next(iter(doc)) == "demo"
    jsonschema.validate(doc, DOCUMENT_SCHEMA)


def hostile_snapshot() -> Snapshot:
    client = connector(arch=HOSTILE, version=HOSTILE, hostname=HOSTILE)
    client["conns"][0]["colo_name"] = HOSTILE
    client["conns"][1]["origin_ip"] = HOSTILE
    parsed, _ = parse_connectors([client])
    tunnel = Tunnel(id=f"id-{HOSTILE}", name=HOSTILE, status=HOSTILE)
    errored = TunnelState(Tunnel(id="t2", name="x", status="healthy"), None, (), f"Cloudflare said: {HOSTILE}")
    return snap(
        TunnelState(tunnel, tuple(parsed), (RecordProblem(HOSTILE, HOSTILE),)),
        errored,
        problems=(RecordProblem("tunnel #3", HOSTILE),),
        account_name=HOSTILE,
    )


def test_hostile_strings_are_escaped_in_json():
    text = render_json(hostile_snapshot())
    for ch in RAW_CONTROLS:
        assert ch not in text
    assert "\\u001b[31mRED" in text
    assert "\\u202e" in text
    assert text.isascii()
    doc = json.loads(text)
    assert doc["tunnels"][0]["name"] == HOSTILE
    assert doc["tunnels"][0]["clients"][0]["arch"] == HOSTILE
    assert doc["tunnels"][0]["clients"][0]["hostname"] == HOSTILE


def test_hostile_strings_are_replaced_in_the_table():
    text = render_table(hostile_snapshot(), NOW)
    for ch in RAW_CONTROLS:
        assert ch not in text
    assert "evil" in text and "RED" in text and REPLACEMENT in text
    assert all(line.isprintable() for line in text.splitlines())


def test_table_layout():
    healthy = state("web", clients=[connector("k1"), connector("k2", pending=1, version="2024.8.2")])
    text = render_table(
        snap(
            healthy,
            state("batch", status="down", clients=[]),
            TunnelState(Tunnel(id="t3", name="lost", status="healthy"), None, (), "Cloudflare answered HTTP 502"),
            account_name="Acme",
        ),
        NOW,
    )
    lines = text.splitlines()
    assert lines[0].startswith("TUNNELTOP UNKNOWN - 3 of 3 tunnels need attention: lost unknown; batch down; web ")
    assert lines[1] == f"account {ACCOUNT} (Acme)"
    assert lines[2] == "fetched 2025-03-01T12:00:00Z"
    assert "web  id-web  status=healthy  health=degraded  active=7  pending=1" in text
    header = next(line for line in lines if "CONNECTOR" in line)
    header_words = ["CONNECTOR", "STARTED", "UPTIME", "ARCH", "VERSION", "CONFIG", "ORIGIN", "IP", "EDGE", "PENDING"]
    assert header.split() == header_words
    k1 = next(line for line in lines if line.strip().startswith("k1"))
    k1_cells = ["k1", "2025-03-01T09:00:00Z", "3h00m", "linux_amd64", "2025.2.0", "7", "203.0.113.5"]
    assert k1.split() == [*k1_cells, "2xDFW,", "2xLAX", "0"]
    k2 = next(line for line in lines if line.strip().startswith("k2"))
    assert k2.split()[-3:] == ["1xDFW,", "2xLAX", "1"]
    assert "batch  id-batch  status=down  health=down  active=0  pending=0" in text
    assert "  no connectors" in lines
    assert "  error: Cloudflare answered HTTP 502" in lines
    assert "health=unknown" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_table_shows_problems_and_unknowns():
    raw = connector(run_at=None, arch=5)
    text = render_table(snap(state(clients=[raw]), problems=(RecordProblem("tunnel #2", "no id; skipped"),)), NOW)
    assert "  problem: connector k1: field 'arch'" in text
    assert "problem: tunnel #2: no id; skipped" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("k1"))
    assert row.split()[1:4] == ["-", "-", "-"]


def test_table_of_nothing_and_demo_label():
    text = render_table(snap(), NOW, demo=True)
    assert text.splitlines()[1].startswith(f"DEMO (simulated account) - account {ACCOUNT}")
    assert "no tunnels" in text


def test_table_ages_from_naive_api_times():
    raw = connector(run_at="2025-03-01T11:00:00")
    text = render_table(snap(state(clients=[raw])), NOW)
    assert " 1h00m " in text


def test_clean():
    assert clean(None) == "-"
    assert clean(42) == "42"
    assert clean("plain text") == "plain text"
    assert clean("a\x1bb\u202ec") == f"a{REPLACEMENT}b{REPLACEMENT}c"
    assert clean("x" * 300) == "x" * 199 + "\N{HORIZONTAL ELLIPSIS}"
    assert clean("x" * 300, None) == "x" * 300
    assert clean("日本語 ok") == "日本語 ok"


def test_connection_and_connector_in_json_roundtrip():
    k = Connector(id="k", conns=[Connection(id="c", opened_at=NOW - timedelta(seconds=5))])
    doc = json.loads(render_json(snap(TunnelState(Tunnel(id="t", status="healthy"), (k,)))))
    assert doc["tunnels"][0]["clients"][0]["conns"][0]["opened_at"] == "2025-03-01T11:59:55Z"
    # Connections of unknown state: the API's "healthy" is taken on trust.
    assert doc["tunnels"][0]["health"] == "healthy"


# -- the monitoring plugin's status line, findings and reach in the table and JSON ----------------------------------


def test_status_line_ok_and_perfdata():
    line = status_line(snap(state("a"), state("b"), state("new", status="inactive", clients=[])))
    assert line == (
        "TUNNELTOP OK - 3 tunnels: 2 healthy, 1 inactive | tunnels=3 healthy=2 degraded=0 down=0 inactive=1 "
        "unknown=0 warnings=0 critical=0 connections=8 pending=0"
    )
    assert status_line(snap()).startswith("TUNNELTOP OK - no tunnels | tunnels=0 ")


def test_status_line_names_what_needs_attention_worst_first():
    s = snap(
        state("prod-web", findings=(WARN,)),
        state("api", clients=[connector(pending=1)]),
        state("idle", status="inactive", clients=[]),
        state("db", status="down", clients=[]),
    )
    assert exit_status(s) == 2
    assert status_line(s) == (
        "TUNNELTOP CRITICAL - 3 of 4 tunnels need attention: db down; api degraded; prod-web config drift | "
        "tunnels=4 healthy=1 degraded=1 down=1 inactive=1 unknown=0 warnings=1 critical=0 connections=7 pending=1"
    )


def test_status_line_is_one_line_and_keeps_names_out_of_the_perfdata():
    many = [state(f"t{i}|x=1\nFAKE", findings=(CRIT, WARN)) for i in range(5)]
    line = status_line(snap(*many))
    text, perf = line.split(" | ")
    assert line.count("|") == 1 and "\n" not in line and line.isprintable()
    assert text.startswith("TUNNELTOP CRITICAL - 5 of 5 tunnels need attention: t0/x=1")
    assert "required but inactive, config drift" in text
    assert text.endswith("and 2 more")
    assert perf.endswith("warnings=0 critical=5 connections=20 pending=0")
    assert render_table(snap(*many), NOW).splitlines()[0] == line


def test_table_lists_each_tunnels_findings_hostnames_and_routes():
    reach = Reach(NOW, "cloudflare", ("app.example.com", "api.example.com/v1"), (Route("10.0.0.0/8", "prod", None),), 9)
    local = Reach(NOW, "local")
    text = render_table(snap(state("web", findings=(CRIT, WARN), reach=reach), state("db", reach=local)), NOW)
    lines = text.splitlines()
    at = lines.index("  CRITICAL required: inactive (never run), but required to run")
    assert lines[at + 1] == "    hint: start it"
    assert lines[at + 2] == "  WARNING config_drift: connector k1 runs configuration version 2, remote 9"
    assert lines[at + 3] == "    hint: restart it"
    assert "  hostnames: app.example.com, api.example.com/v1" in lines
    assert "  routes: 10.0.0.0/8 (prod)" in lines
    assert "  hostnames: locally managed (in the config file on the connector's host)" in lines


def test_json_has_the_status_findings_and_reach():
    reach = Reach(NOW, "cloudflare", ("app.example.com",), (Route("10.0.0.0/8", "prod", "office"),), 9)
    doc = json.loads(render_json(snap(state("web", findings=(WARN,), reach=reach), state("db"))))
    assert doc["status"] == "warning"
    web, db = doc["tunnels"]
    assert web["findings"] == [
        {
            "check": "config_drift",
            "severity": "warning",
            "message": "connector k1 runs configuration version 2, remote 9",
            "hint": "restart it",
            "connector_id": None,
        }
    ]
    assert (web["managed"], web["hostnames"]) == ("cloudflare", ["app.example.com"])
    assert web["routes"] == [{"network": "10.0.0.0/8", "virtual_network": "prod", "comment": "office"}]
    assert (db["findings"], db["managed"], db["hostnames"], db["routes"]) == ([], None, None, None)
    assert json.loads(render_json(snap()))["status"] == "ok"


def _dumped(snapshot: Snapshot) -> object:
    """The document's value as json.dumps writes the snapshot's own dicts (what render_json must equal)."""
    return json.loads(json.dumps(snapshot.to_json(), ensure_ascii=True))


def test_json_clients_written_by_pydantic_are_the_same_value_as_their_records():
    odd = connector("k2", hostname="é\u202e\x1b", extra={"n": 10**30, "f": 1e16, "nested": [1.5, None, True]})
    odd["conns"][0]["colo"] = "日本"
    surrogate = connector("k3", arch="x\ud800y")  # JSON cannot carry it as text: that connector falls back
    nan = connector("k4", extra=float("nan"), worse=[float("inf")])
    here = LocalReady("127.0.0.1:20241", "k1", 4, 200)
    snapshot = snap(state(clients=[connector(), odd, surrogate, nan]), local=here)
    text = render_json(snapshot)
    assert text.isascii()
    document = json.loads(text)
    expected = _dumped(snapshot)
    assert {k: v for k, v in document.items() if k not in ("status", "not_fetched")} == expected
    clients = document["tunnels"][0]["clients"]
    assert clients[0]["this_host"] is True and "this_host" not in clients[1]
    assert (clients[2]["arch"], clients[3]["extra"], clients[3]["worse"]) == ("x\ud800y", None, [None])
    lines = text.splitlines()
    assert all(sum(f'"{kid}"' in line for line in lines) == 1 for kid in ("k2", "k3", "k4")), "a connector a line"


def test_json_findings_written_at_once_are_the_same_value_as_their_records():
    odd = Finding("odd\x1b", Severity.CRITICAL, 'say "it"\u202e\n', "é\\", "k\ud800")
    # Findings of one kind (check, severity, hint) share the text around their own message and connector.
    kin = (
        Finding(WARN.check, WARN.severity, "the other one", WARN.hint, "k9"),
        Finding("odd\x1b", odd.severity, "", "é\\"),
    )
    findings = (WARN, CRIT, odd, *kin)
    document = json.loads(render_json(snap(state(findings=findings))))
    assert document["tunnels"][0]["findings"] == [f.to_json() for f in findings]
