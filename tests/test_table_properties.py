"""Property tests of the virtual table's update paths: a poll applied to the table as it is (rows bisected in, or
merged into the order kept, on the table itself or on copies for a plan) leaves it exactly as working the same rows
out from scratch does, whatever the sort and its direction."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from tests.test_table import NOW, keys, line, make_row
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.ui.virtual_table import _INSERT_AT_MOST, _merged, _ordered_in_pieces
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import Mark

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=12)
ROWS = 2400  # enough for a change past _INSERT_AT_MOST that is still a small share (a plan on copies, merged)
# How many rows a poll changes: a few (bisected in), past _INSERT_AT_MOST (merged), or most (worked out anew).
CHURNS = st.sampled_from([0, 1, 4, _INSERT_AT_MOST + 40, _INSERT_AT_MOST + 90, ROWS // 2])


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield ConnectionsTable(show_tunnel=True, id="kept")
        yield ConnectionsTable(show_tunnel=True, id="fresh")


def _poll(rows: dict[str, ConnRow], churn: int, rng: random.Random, serial: int) -> int:
    """``churn`` changes: a third close, a third open, a third change state or colo (a failover's ghosts and moves
    look like these); returns the next serial."""
    for key in rng.sample(sorted(rows), churn // 3):
        del rows[key]
    for _ in range(churn // 3):
        serial += 1
        row = make_row(serial, tunnel=rng.randrange(4), pending=rng.random() < 0.2, age=serial * 7)
        rows[row.key] = row
    for key in rng.sample(sorted(rows), churn - 2 * (churn // 3)):
        old = rows[key]
        update = {"is_pending_reconnect": not old.conn.is_pending_reconnect, "colo_name": rng.choice(["ORD", "AMS"])}
        rows[key] = ConnRow(key, old.tunnel, old.connector, old.conn.model_copy(update=update))
    return serial


async def test_each_update_path_leaves_the_table_as_worked_out_from_scratch() -> None:
    async with Tables().run_test(size=(160, 30)) as pilot:
        kept = pilot.app.query_one("#kept", ConnectionsTable)
        fresh = pilot.app.query_one("#fresh", ConnectionsTable)

        @DETERMINISTIC
        @given(
            st.integers(0, 2**32),
            st.lists(
                st.tuples(CHURNS, st.sampled_from([None, *COLUMNS]), st.booleans(), st.booleans(), st.integers(0, 40)),
                min_size=1,
                max_size=4,
            ),
        )
        def check(seed: int, polls: list[tuple[int, str | None, bool, bool, int]]) -> None:
            rng = random.Random(seed)
            rows = {r.key: r for r in (make_row(n, tunnel=n % 4, pending=n % 11 == 0) for n in range(ROWS))}
            serial = ROWS
            kept.show(list(rows.values()), NOW)
            for step, (churn, column, reverse, planned, marked) in enumerate(polls):
                serial = _poll(rows, churn, rng, serial)
                if column is not None:
                    kept.set_sort(column, reverse)
                now = NOW + timedelta(seconds=5 * step)
                marks = {k: Mark("new", now + timedelta(seconds=30)) for k in rng.sample(sorted(rows), marked)}
                batch = list(rows.values())
                rng.shuffle(batch)
                if planned:  # worked out on copies of the table (or anew, for most of it), then taken in
                    assert kept.adopt(kept.plan(batch, marks), now)
                else:
                    kept.show(batch, now, marks)
                fresh.show([], now)
                fresh.set_sort(kept.sort_column, kept.sort_reverse)
                assert fresh.adopt(fresh.plan(batch, marks), now)  # from scratch: the table was empty
                assert keys(kept) == keys(fresh)
                assert kept.rows_by_key == fresh.rows_by_key
                # The header shows every column's width; the lines, each row's cells and marks.
                for y in (0, 1, 2, 3):
                    kept.scroll_to(y=0, animate=False, immediate=True)
                    assert line(kept, y) == line(fresh, y)
                for key in rng.sample(sorted(rows), 20):
                    assert [kept.get_cell(key, c) for c in COLUMNS] == [fresh.get_cell(key, c) for c in COLUMNS]

        check()


@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(st.integers(0, 2**32), st.integers(0, 9000), st.integers(0, 3000), st.booleans())
def test_merging_into_the_kept_order_is_sorting_it_all(seed: int, kept: int, arriving: int, ties: bool) -> None:
    rng = random.Random(seed)
    keys = [f"k{n:05d}" for n in rng.sample(range(20_000), kept + arriving)]
    # A rank with many equal primaries (a state column: four values) and the key itself last, as the table's are.
    primary = {k: rng.randrange(4) if ties else rng.random() for k in keys}

    def rank(key: str) -> tuple[object, str]:
        return (primary[key], key)

    order = sorted(keys[:kept], key=rank)
    assert _merged(order, keys[kept:], rank) == sorted(keys, key=rank)


@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(st.integers(0, 2**32), st.integers(0, 12_000), st.booleans(), st.booleans())
def test_an_order_worked_out_in_pieces_is_the_order_sorted_at_once(
    seed: int, size: int, ties: bool, reverse: bool
) -> None:
    # A table's order is sorted in pieces and merged (plan, sort_plan: off the screen's thread for a large one): it
    # must be the order of one sort, equal primaries (a colo column) in their natural order.
    rng = random.Random(seed)
    sort_keys = {
        f"k{rng.random()}": (rng.choice(("DFW", "LAX", "AMS", "NRT")) if ties else rng.random(), f"natural-{n:05d}")
        for n in rng.sample(range(20_000), size)
    }
    at_once = sorted(sort_keys, key=lambda k: sort_keys[k][1])
    at_once.sort(key=lambda k: sort_keys[k][0], reverse=reverse)  # stable: equals keep the natural order
    assert _ordered_in_pieces(sort_keys, reverse) == at_once
