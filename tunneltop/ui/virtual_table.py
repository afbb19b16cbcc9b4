"""A virtual table on Textual's line API: rows kept in its own sorted structure, updated by diff, drawn line by line.

Textual's DataTable removes a row in O(n) and adds or clears about 10,000 rows a second, which is far too slow for
an account-wide view polled every few seconds. This table keeps its rows in its own sorted list of keys (sorted on
real values), applies each poll as a diff (a changed row is re-placed by bisection), and draws only the lines on
screen through ``render_line``, each from a per-row cache. Columns that follow the clock (ages) are formatted only
for the lines drawn. A large change can be worked out on another thread (``plan``: the same diff applied to copies
of the table's containers, or the table worked out from scratch) and taken in at once (``adopt``).

It speaks DataTable's language where the app and tests use it: the same messages (subclasses of DataTable's
``RowHighlighted``, ``RowSelected`` and ``HeaderSelected``, so ``@on(DataTable.RowSelected, "#table")`` handlers
keep working), and ``row_count``, ``cursor_row``, ``move_cursor``, ``get_cell``, ``get_cell_at``, ``get_row_index`` and
``coordinate_to_cell_key``. The connections table and the account overview are both one.

Longer than the ~400 lines a module here aims for, kept whole on purpose: the sorted order, the per-row cell
widths, the cursor and the line cache are one structure updated together by each diff; split across modules they
would share private state both ways.
"""

from __future__ import annotations

import heapq
import operator
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress
from operator import itemgetter
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, CellKey, ColumnKey, RowKey

from tunneltop.model.snapshot import same_objects
from tunneltop.ui.line_style import PassStyle
from tunneltop.ui.textual_internals import update_scrollbars
from tunneltop.views.rows import ChangedRows

R = TypeVar("R")
Cell = tuple[str, str]  # (text, style): cheap to compare and to cache
_PADDING = 1  # one blank cell each side of a value, as DataTable draws them
NEVER = datetime.max.replace(tzinfo=UTC)  # a clock text that no time changes ("-", "not yet")
# Up to this many rows entering, leaving or moving at once, or this share of the table, each is bisected in or out
# (an insert or delete moves the rest of the list along: O(n) apiece); beyond, they are merged into the order kept
# (see _merged: O(n) at C speed, about 20 ms at 100,000 rows, as long as a thousand inserts there).
_INSERT_AT_MOST = 512
_INSERT_SHARE = 100
_LINE_CACHE_MAX = 1024
# A plan (see VirtualTable.plan) sorts in pieces this long, then merges them: one sort of 100,000 rows is a single
# C call that would hold the GIL, and so the screen's thread, for about 0.1 s. A merge (_merged) goes a piece of
# the kept order at a time for the same reason.
_SORT_PIECE = 4096
# A plan changes copies of the table's containers as show() would when at most this share of its rows changes, and
# works the table out from scratch beyond it.
_PLAN_FROM_SCRATCH_SHARE = 4


# A row's cell widths, kept for every row (the columns' widths are the widest): as bytes, 41 bytes a row of eight
# against 120 as a tuple (10 MB at 100,000 rows); a tuple only where a cell is 256 or more wide.
Sizes = bytes | tuple[int, ...]


# A text of printable ASCII and of the symbols tunneltop draws that take one cell each (by rich's own measure, taken
# when the module loads) is as wide as it is long. rich measures any other text a character at a time in Python,
# and only short ones from its cache: an event's line with an arrow took ~20 µs, 500 of them when the log is shown.
_ONE_CELL_TEXT = re.compile(
    "[ -~" + re.escape("".join(c for c in "·…→←↑↓—–✖✔✚⚠⟳●○◐◌▲▼" if cell_len(c) == 1)) + "]*"
).fullmatch


def _width(text: str) -> int:
    return len(text) if text.isascii() or _ONE_CELL_TEXT(text) else cell_len(text)


def _sizes(cells: Sequence[Cell]) -> Sizes:
    # In one pass: a row of the connections table always has a non-ASCII cell (its state's label).
    widths = [_width(text) for text, _ in cells]
    try:
        return bytes(widths)
    except ValueError:  # a cell 256 or more wide
        return tuple(widths)


def _same_mark(a: Any, b: Any) -> bool:
    # Marks are shared objects while unchanged (a poll's new rows share one): identity settles most.
    return a is b or a == b


class _Descending:
    """Turns one sort key around, so ``(_Descending(primary), natural)`` sorts a reversed column with its ties
    still in natural order, exactly like ``watch.rows.sort_rows(..., reverse=True)``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


@dataclass(slots=True)
class TablePlan(Generic[R]):
    """What a table holds after showing ``rows``: worked out without touching it (see VirtualTable.plan), or, while
    show() changes them, the table's own containers."""

    base: int  # the table's generation it was worked out from: adopted only if the table is still there
    rows: list[R]
    ids: dict[int, R] | None  # the rows by id(), where worked out (see VirtualTable._diff)
    marks: dict[str, Any]
    rows_by_key: dict[str, R]
    sort_keys: dict[str, tuple[Any, ...]]
    row_marks: dict[str, Any]
    cell_sizes: dict[str, Sizes]
    cell_widths: dict[str, Counter[int]]
    order: list[str]
    given: object | None = None  # the token of the rows it shows, where they tell what changed (ChangedRows)
    sort: tuple[str, bool] | None = None  # the sort it is in, where it changes it (see VirtualTable.sort_plan)


def _inserts(changes: int, rows: int) -> bool:
    """Whether a change of ``changes`` keys to an order of ``rows`` bisects each in or out (else: a merge)."""
    return changes <= max(_INSERT_AT_MOST, rows // _INSERT_SHARE)


def _merged(kept: list[str], arriving: list[str], rank: Callable[[str], Any]) -> list[str]:
    """``kept`` (in order by ``rank``) and ``arriving`` (in any order, none of them in ``kept``) in one order:
    O(n + k log k), where sorting it all again is O(n log n). Each piece of ``kept`` takes the arriving keys that
    rank before its end, and one sort of the two runs merges them (timsort finds the runs: a linear merge in C)."""
    if not arriving:
        return kept
    arriving = sorted(arriving, key=rank)
    if not kept:
        return arriving
    ranks = [rank(k) for k in arriving]
    out: list[str] = []
    taken = 0
    for start in range(0, len(kept), _SORT_PIECE):
        piece = kept[start : start + _SORT_PIECE]
        end = bisect_left(ranks, rank(piece[-1]), lo=taken) if start + _SORT_PIECE < len(kept) else len(arriving)
        if end > taken:
            piece += arriving[taken:end]
            piece.sort(key=rank)
            taken = end
        out += piece
    return out


def _ordered_in_pieces(sort_keys: dict[str, tuple[Any, ...]], reverse: bool) -> list[str]:
    """The keys in display order (by primary, equals in natural order), sorted in pieces: one sort of 100,000 keys is
    a single call that holds the GIL throughout, so on a worker thread pieces are sorted and merged by a generator
    (the screen's thread gets the GIL between them). Nothing is made per key, and no comparison is Python code:
    ascending, the keys' own (primary, natural) tuples rank them; descending, the keys are put in natural order
    first and then stably by primary, each merge keeping equals in the order it was given (``_Descending`` ranks
    compared in Python took 0.94 s of 100,000 keys, this 0.33)."""
    keys = list(sort_keys)
    if not reverse:
        return _merged_pieces(keys, sort_keys.__getitem__, reverse=False)
    natural_first = _merged_pieces(keys, lambda k: sort_keys[k][1], reverse=False)
    return _merged_pieces(natural_first, lambda k: sort_keys[k][0], reverse=True)


def _merged_pieces(keys: list[str], rank: Callable[[str], Any], reverse: bool) -> list[str]:
    """``keys`` stably sorted by ``rank``: pieces sorted, then merged (equals stay in the order given)."""
    pieces = [sorted(keys[i : i + _SORT_PIECE], key=rank, reverse=reverse) for i in range(0, len(keys), _SORT_PIECE)]
    return list(heapq.merge(*pieces, key=rank, reverse=reverse))


class VirtualTable(PassStyle, ScrollView, Generic[R], can_focus=True):
    """A virtual table of keyed rows, sorted on real values, updated by diff, drawn line by line.

    A subclass says what a row is: its key, cells, sort keys and natural order, and which columns follow the
    clock (``TIMED``: their text is made only when drawn, in a column of fixed width)."""

    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .virtual-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .virtual-table--header {
                background-tint: $foreground 5%;
            }
        }
        & > .virtual-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .virtual-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .virtual-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    COMPONENT_CLASSES = {"virtual-table--header", "virtual-table--cursor"}

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
        Binding("enter", "select_cursor", "Select", show=False),
    ]

    class RowHighlighted(DataTable.RowHighlighted):
        """The cursor moved to another row (a DataTable message: ``row_key.value`` is the row's key)."""

    class RowSelected(DataTable.RowSelected):
        """Enter or a click on a row."""

    class HeaderSelected(DataTable.HeaderSelected):
        """A click on a column heading (``column_key.value`` is the column id)."""

    HEADINGS: ClassVar[dict[str, str]] = {}  # column id -> its heading
    SORTS: ClassVar[dict[str, Callable[[Any], Any]]] = {}  # column id -> its sort key, on real values
    TIMED: ClassVar[dict[str, int]] = {}  # column id -> its width, for columns whose text follows the clock

    def __init__(self, *, columns: Sequence[str], sort_column: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns_shown = list(columns)
        self.sort_column = sort_column
        self.sort_reverse = False
        self.rows_by_key: dict[str, R] = {}
        self.cursor_row = 0
        self._now: datetime | None = None
        # Until when no clock text of the lines drawn can read differently: a tick before then redraws nothing and
        # need not work out any line (ages over an hour move once a minute; the screen's clock ticks each second).
        self._steady_until = NEVER
        # The keys, in display order. A key's place is found by bisection on its rank (_rank), worked out for the
        # O(log n) keys a bisection looks at: a list of every row's rank beside it cost 147 bytes a row.
        self._order: list[str] = []
        self._sort_keys: dict[str, tuple[Any, ...]] = {}  # key -> (primary, natural) for the current column
        self._marks: dict[str, Any] = {}  # the mark each row's cells were made with (unmarked rows: absent)
        # Each row's cell widths (for the column widths); its cells are made again when its line is drawn.
        self._cell_sizes: dict[str, Sizes] = {}
        self._widths: dict[str, int] = {}
        self._cell_widths: dict[str, Counter[int]] = {c: Counter() for c in self.columns_shown}
        self._line_cache: dict[str, tuple[tuple[Any, ...], Strip]] = {}
        self._styles: dict[tuple[Style, str], Style] = {}
        self._painted: dict[int, tuple[Any, ...]] = {}  # screen line -> what was drawn there
        self._highlighted: str | None = None
        self._shown: list[R] = []  # the rows and marks of the last show()
        self._shown_ids: dict[int, R] | None = {}  # those rows by id() (None: not worked out yet)
        # The token of the rows last shown where they tell what changed since the list before (ChangedRows): then the
        # next list, told since that one, says what came and left, and it is not worked out comparing both.
        self._given: object | None = None
        self._shown_marks: dict[str, Any] = {}
        self._timed = [c for c in self.columns_shown if c in self.TIMED]
        self._generation = 0  # bumped by every change of rows or sort: a plan made before one is not adopted
        self._recompute_widths()

    # -- what a subclass says about its rows --------------------------------------------------------------------

    def key_of(self, row: R) -> str:
        raise NotImplementedError

    def natural_key(self, row: R) -> Any:
        """The order of rows whose sort values tie (and of the sorted column's reverse)."""
        raise NotImplementedError

    def cells(self, row: R, mark: Any) -> tuple[Cell, ...]:
        """Each shown column's (text, style); a timed column's text is made by ``timed_text`` instead."""
        raise NotImplementedError

    def timed_text(self, row: R, column: str, now: datetime) -> str:
        raise NotImplementedError

    def timed_changes_at(self, row: R, column: str, now: datetime) -> datetime:
        """When ``timed_text`` of ``row`` in ``column`` may next read differently (by default: at once)."""
        return now

    def same_row(self, a: R, b: R) -> bool:
        """Whether ``b`` (this poll's) shows exactly as ``a`` did: then its place and cells are kept."""
        return a is b or a == b

    # -- DataTable-compatible reading ---------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def cursor_key(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def get_row_index(self, key: RowKey | str) -> int:
        value = key.value if isinstance(key, RowKey) else key
        if value not in self._sort_keys:
            raise KeyError(value)
        index = bisect_left(self._order, self._rank(value), key=self._rank)
        assert self._order[index] == value
        return index

    def coordinate_to_cell_key(self, coordinate: Coordinate | tuple[int, int]) -> CellKey:
        row, column = coordinate
        if not (0 <= row < len(self._order) and 0 <= column < len(self.columns_shown)):
            raise CellDoesNotExist(f"no cell at {coordinate}")
        return CellKey(RowKey(self._order[row]), ColumnKey(self.columns_shown[column]))

    def get_cell(self, row_key: RowKey | str, column_key: ColumnKey | str) -> Text:
        """The cell as drawn (without the cursor): its text and style."""
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        column = column_key.value if isinstance(column_key, ColumnKey) else column_key
        if key not in self._cell_sizes or column not in self.columns_shown:
            raise CellDoesNotExist(f"no cell {key!r}, {column!r}")
        cells = self.cells(self.rows_by_key[key], self._marks.get(key))
        text, style = cells[self.columns_shown.index(column)]
        if column in self.TIMED and self._now is not None:
            text = self.timed_text(self.rows_by_key[key], column, self._now)
        return Text(text, style=style)

    def get_cell_at(self, coordinate: Coordinate | tuple[int, int]) -> Text:
        """The cell at (row index, column index), as drawn (without the cursor)."""
        key = self.coordinate_to_cell_key(coordinate)
        return self.get_cell(key.row_key, key.column_key)

    # -- sorting ------------------------------------------------------------------------------------------------

    def _heading(self, column: str) -> str:
        label = self.HEADINGS[column]
        if column == self.sort_column:
            label += " ▼" if self.sort_reverse else " ▲"
        return label

    def _sort_key(self, row: R) -> tuple[Any, ...]:
        return (self.SORTS[self.sort_column](row), self.natural_key(row))

    def _rank(self, key: str) -> tuple[Any, ...]:
        primary, natural = self._sort_keys[key]
        return (_Descending(primary), natural) if self.sort_reverse else (primary, natural)

    def set_sort(self, column: str, reverse: bool) -> None:
        self.adopt(self.sort_plan(column, reverse), self._now)

    # -- updates ------------------------------------------------------------------------------------------------

    def show(self, rows: Sequence[R], now: datetime, marks: Mapping[str, Any] | None = None) -> None:
        """Make the table show exactly ``rows``, touching only rows that changed."""
        marks = marks or {}
        if same_objects(rows, self._shown) and marks == self._shown_marks:
            # The very same rows (records are reused while unchanged) and marks: only the ages move on.
            self._now = now
            self._refresh_changed()
            return
        self._generation += 1
        keep = self.cursor_key
        by_id, new_rows, gone, changed = self._diff(rows, marks, self._told(rows))
        self._shown, self._shown_ids, self._shown_marks = list(rows), by_id, dict(marks)
        self._given = rows.token if isinstance(rows, ChangedRows) else None
        self.rows_by_key = new_rows
        self._now = now
        if gone or changed:
            state = TablePlan(
                self._generation, self._shown, by_id, self._shown_marks, new_rows, self._sort_keys, self._marks,
                self._cell_sizes, self._cell_widths, self._order,
            )
            self._apply_to(state, gone, changed, marks, self._line_cache)  # in place: only the order may be new
            self._order = state.order
            self._recompute_widths()
        self._follow(keep)
        self._refresh_changed()

    def _told(self, rows: Sequence[R]) -> tuple[list[R], list[str]] | None:
        """The rows that came and the keys that went since the rows shown, where ``rows`` tells them (ChangedRows)
        since the very list shown, and no key of the rows shown was listed twice."""
        if not isinstance(rows, ChangedRows) or len(self.rows_by_key) != len(self._shown):
            return None
        if rows.token is self._given:
            return [], []  # the very list shown (never changed once handed out)
        if rows.since is None or rows.since is not self._given:
            return None
        return rows.came, rows.left

    def _diff(
        self, rows: Sequence[R], marks: Mapping[str, Any], told: tuple[list[R], list[str]] | None = None
    ) -> tuple[dict[int, R] | None, dict[str, R], list[str], list[str]]:
        """Against what the table shows: ``rows`` by id() (None where ``told``), by key, the keys that went and
        those whose row or mark changed. ``told``: the rows that came and the keys of those that left (see _told),
        else worked out here. Reads the table only."""
        old_rows = self.rows_by_key
        key_of = self.key_of
        by_id: dict[int, R] | None = None
        if told is not None:
            arrived, left_keys = told
            arrived_keys = list(map(key_of, arrived))
            new_rows = dict(old_rows)
            for key in left_keys:  # each was one row's (no key listed twice, see _told), and no row holds it now
                del new_rows[key]
        else:
            # Rows are the same objects while unchanged, so what arrived and what left is found at C speed (set
            # operations on ids); only those are looked at one by one, each keyed once.
            by_id = dict(zip(map(id, rows), rows, strict=True))
            before = self._shown_ids
            if before is None:
                before = dict(zip(map(id, self._shown), self._shown, strict=True))
            arrived = [by_id[i] for i in by_id.keys() - before.keys()]
            left = [before[i] for i in before.keys() - by_id.keys()]
            arrived_keys = list(map(key_of, arrived))
            left_keys = list(map(key_of, left))
            new_rows = dict(old_rows)
            # A left row's key goes unless another row holds it (a key listed twice).
            for key in compress(left_keys, map(operator.is_, map(new_rows.get, left_keys), left)):
                del new_rows[key]
        new_rows.update(zip(arrived_keys, arrived, strict=True))
        if len(new_rows) == len(rows):
            gone = [k for k in left_keys if k not in new_rows]
        else:  # a key listed twice: the plain, slower way
            new_rows = {key_of(r): r for r in rows}
            arrived, arrived_keys = list(new_rows.values()), list(new_rows)
            gone = [k for k in old_rows if k not in new_rows]
        seen_marks = self._marks
        same_row = self.same_row
        # Most rows that arrive are the rows of a connector made again with it, shown as before: one comprehension,
        # same_row called only for a row shown before whose mark is the same object.
        changed = dict.fromkeys(
            key
            for key, row, old, was, now in zip(
                arrived_keys,
                arrived,
                map(old_rows.get, arrived_keys),
                map(seen_marks.get, arrived_keys),
                map(marks.get, arrived_keys),
                strict=True,
            )
            if old is None or not (was is now or was == now) or not (old is row or same_row(old, row))
        )
        for key in marks.keys() | seen_marks.keys():  # marks that came or went on rows that did not change
            if key in new_rows and not _same_mark(marks.get(key), seen_marks.get(key)):
                changed[key] = None
        return by_id, new_rows, gone, list(changed)

    def needs(self, rows: Sequence[R], marks: Mapping[str, Any] | None = None) -> bool:
        """Whether showing ``rows`` would change anything but the ages."""
        return not (same_objects(rows, self._shown) and dict(marks or {}) == self._shown_marks)

    def plan(self, rows: Sequence[R], marks: Mapping[str, Any] | None = None) -> TablePlan[R]:
        """What ``show(rows, ..., marks)`` would make of the table, worked out without changing it (from scratch, or
        for a change of a small part of it, on copies of its containers):
        safe on another thread while the table is only read (drawn, its cursor moved) meanwhile. ``adopt`` then
        takes it in O(1) on the screen's thread. For a change of most of a large table (a first poll, a filter
        typed or cleared, a failover): at 100,000 rows this is about a second of Python the screen need not wait
        for. A row shown before as the very same object keeps its cell widths and sort key."""
        key_of, cells, natural = self.key_of, self.cells, self.natural_key
        primary = self.SORTS[self.sort_column]
        marks = dict(marks or {})
        told = self._told(rows)
        given = rows.token if isinstance(rows, ChangedRows) else None
        rows = list(rows)
        by_id, new_rows, gone, changed = self._diff(rows, marks, told)
        if len(gone) + len(changed) <= len(self._order) // _PLAN_FROM_SCRATCH_SHARE:
            # A change of a small part (a failover: 8% of the rows, their ghosts and marks): the table's own
            # containers copied (a few ms each at 100,000 rows) and changed as show() changes them.
            # The order is only read when merged into (a new list): copied only for rows bisected in.
            order = list(self._order) if _inserts(len(gone) + len(changed), len(self._order)) else self._order
            state = TablePlan(
                self._generation, rows, by_id, marks, new_rows, dict(self._sort_keys), dict(self._marks),
                dict(self._cell_sizes), {c: Counter(n) for c, n in self._cell_widths.items()}, order, given,
            )
            self._apply_to(state, gone, changed, marks, None)
            return state
        rows_by_key = {key_of(r): r for r in rows}
        old_rows, old_sizes, old_keys, old_marks = self.rows_by_key, self._cell_sizes, self._sort_keys, self._marks
        sizes: dict[str, Sizes] = {}
        sort_keys: dict[str, tuple[Any, ...]] = {}
        row_marks: dict[str, Any] = {}
        for key, row in rows_by_key.items():
            mark = marks.get(key)
            if mark is not None:
                row_marks[key] = mark
            if old_rows.get(key) is row and old_marks.get(key) == mark and key in old_sizes:
                sizes[key], sort_keys[key] = old_sizes[key], old_keys[key]
            else:
                sizes[key] = _sizes(cells(row, mark))
                sort_keys[key] = (primary(row), natural(row))
        widths = {c: Counter(s[i] for s in sizes.values()) for i, c in enumerate(self.columns_shown)}
        return TablePlan(
            base=self._generation,
            rows=rows,
            ids=by_id,
            marks=marks,
            rows_by_key=rows_by_key,
            sort_keys=sort_keys,
            row_marks=row_marks,
            cell_sizes=sizes,
            cell_widths=widths,
            order=_ordered_in_pieces(sort_keys, self.sort_reverse),
            given=given,
        )

    def sort_plan(self, column: str, reverse: bool) -> TablePlan[R]:
        """What ``set_sort(column, reverse)`` would make of the table, worked out without changing it (safe on
        another thread while the table is only read meanwhile, as ``plan``); ``adopt`` takes it in. At 100,000 rows
        a sort on the screen's thread froze it 1.3 s (benchmarks.live). Everything but the sort keys and the order
        is the table's own, shared."""
        primary = self.SORTS[column]
        old_keys = self._sort_keys
        sort_keys = {k: (primary(r), old_keys[k][1]) for k, r in self.rows_by_key.items()}
        return TablePlan(
            base=self._generation,
            rows=self._shown,
            ids=self._shown_ids,
            marks=self._shown_marks,
            rows_by_key=self.rows_by_key,
            sort_keys=sort_keys,
            row_marks=self._marks,
            cell_sizes=self._cell_sizes,
            cell_widths=self._cell_widths,
            order=_ordered_in_pieces(sort_keys, reverse),
            given=self._given,
            sort=(column, reverse),
        )

    def adopt(self, plan: TablePlan[R], now: datetime | None) -> bool:
        """Take a plan (see ``plan``) if the table has not changed since it was made; False if it has."""
        if plan.base != self._generation:
            return False
        self._generation += 1
        keep = self.cursor_key
        self._shown, self._shown_ids, self._shown_marks = plan.rows, plan.ids, plan.marks
        self._given = plan.given
        self.rows_by_key, self._sort_keys, self._marks = plan.rows_by_key, plan.sort_keys, plan.row_marks
        self._cell_sizes, self._cell_widths = plan.cell_sizes, plan.cell_widths
        self._order = plan.order
        self._now = now
        if plan.sort is not None:
            self.sort_column, self.sort_reverse = plan.sort
        self._recompute_widths()
        self._follow(keep)
        if plan.sort is not None:
            self._refresh_all()  # every line moved, and the header's arrow
        else:
            self._refresh_changed()
        return True

    def tick(self, now: datetime) -> None:
        """Only the clock moved: redraw the lines on screen whose clock columns now read differently."""
        before, self._now = self._now, now
        if before is not None and before <= now < self._steady_until:  # (a replay's clock may go back)
            return
        self._steady_until = NEVER  # worked out again from every line on screen, below
        self._refresh_changed()

    def _apply_to(
        self,
        state: TablePlan[R],
        gone: list[str],
        changed: list[str],
        marks: Mapping[str, Any],
        line_cache: dict[str, tuple[tuple[Any, ...], Strip]] | None,
    ) -> None:
        """Change ``state`` (the table's own containers, or copies of them: see plan) for the keys that went and
        those whose row or mark changed, as ``state.rows_by_key`` and ``marks`` now have them."""
        columns = self.columns_shown
        sort_keys, sizes_of, order, row_marks = state.sort_keys, state.cell_sizes, state.order, state.row_marks
        # A few rows are bisected in and out (each moves the rest of the list along: O(n) apiece); more are merged
        # into the kept order at once (see _merged).
        incremental = _inserts(len(gone) + len(changed), len(order))
        rank_of = self._ranker(sort_keys)
        forgotten: list[Sizes] = []
        added: list[Sizes] = []
        moved: set[str] = set()  # keys whose place in the order is taken out (merged: all at once, below)
        arriving: list[str] = []  # keys to be placed (again) in the order

        def forget(key: str) -> None:
            forgotten.append(sizes_of.pop(key))
            row_marks.pop(key, None)
            if line_cache is not None:
                line_cache.pop(key, None)

        def drop_from_order(key: str) -> None:
            if incremental:
                del order[bisect_left(order, rank_of(key), key=rank_of)]
            else:
                moved.add(key)

        for key in gone:
            drop_from_order(key)
            forget(key)
            del sort_keys[key]
        cells, sort_key_of, rows_by_key = self.cells, self._sort_key, state.rows_by_key
        for key in changed:
            row = rows_by_key[key]
            mark = marks.get(key)
            if key in sizes_of:
                forget(key)
            sizes = sizes_of[key] = _sizes(cells(row, mark))
            added.append(sizes)
            if mark is not None:
                row_marks[key] = mark
            sort_key = sort_key_of(row)
            before = sort_keys.get(key)
            if before == sort_key:
                continue
            if before is not None:
                drop_from_order(key)
            sort_keys[key] = sort_key
            if incremental:
                order.insert(bisect_left(order, rank_of(key), key=rank_of), key)
            else:
                arriving.append(key)
        if not incremental:
            state.order = _merged([k for k in order if k not in moved] if moved else order, arriving, rank_of)
        # Each column's widths counted for all those rows at once, at C speed (Counter over itemgetter).
        for index, column in enumerate(columns):
            counter, width_of = state.cell_widths[column], itemgetter(index)
            if added:
                counter.update(map(width_of, added))
            if forgotten:
                counter.subtract(Counter(map(width_of, forgotten)))
                for width in [w for w, n in counter.items() if n <= 0]:
                    del counter[width]

    def _ranker(self, sort_keys: dict[str, tuple[Any, ...]]) -> Callable[[str], Any]:
        """A key's rank in the display order, from its (primary, natural) sort key; distinct keys never tie (the
        natural key ends with the row's key)."""
        if not self.sort_reverse:
            return sort_keys.__getitem__  # at C speed: the (primary, natural) tuple is the rank itself

        def rank_of(key: str) -> tuple[Any, ...]:
            primary, natural = sort_keys[key]
            return (_Descending(primary), natural)

        return rank_of

    def _recompute_widths(self) -> None:
        widths = {}
        for column in self.columns_shown:
            content = self.TIMED.get(column) or max(self._cell_widths[column], default=1)
            widths[column] = max(content, cell_len(self._heading(column))) + 2 * _PADDING
        if widths != self._widths:
            self._widths = widths
            self._line_cache.clear()
            self._painted.clear()
        self._set_virtual_size(Size(sum(widths.values()), len(self._order) + 1))

    def _set_virtual_size(self, size: Size) -> None:
        """Setting ``virtual_size`` lays out the whole screen again (and repaints all of it). A table whose height
        does not depend on its rows only needs its scrollbars updated, unless one of them appears or goes."""
        if size == self.virtual_size:
            return
        height = self.styles.height
        if not self.is_mounted or height is None or height.is_auto:
            self.virtual_size = size
            return
        scrollbars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self.set_reactive(VirtualTable.virtual_size, size)
        update_scrollbars(self, size)
        if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != scrollbars:
            self.refresh(layout=True)

    # -- the cursor ---------------------------------------------------------------------------------------------

    def _follow(self, key: str | None) -> None:
        """Keep the cursor on ``key`` wherever it went; where it left, keep the index (within the rows)."""
        if key is not None and key in self._sort_keys:
            index = self.get_row_index(key)
            self._move_to(index, scroll=self.cursor_row != index)
        else:
            self._move_to(min(self.cursor_row, max(0, len(self._order) - 1)), scroll=False)

    def _move_to(self, row: int, scroll: bool = True) -> None:
        row = max(0, min(row, len(self._order) - 1)) if self._order else 0
        if row != self.cursor_row:
            self.cursor_row = row
            self._refresh_changed()
        if scroll:
            self._scroll_to_cursor()
        key = self.cursor_key
        if key != self._highlighted:
            self._highlighted = key
            if key is not None:
                self.post_message(self.RowHighlighted(self, row, RowKey(key)))  # type: ignore[arg-type]

    def move_cursor(
        self, *, row: int | None = None, column: int | None = None, animate: bool = False, scroll: bool = True
    ) -> None:
        if row is not None:
            self._move_to(row, scroll=scroll)

    def select_key(self, key: str) -> bool:
        if key not in self.rows_by_key:
            return False
        self._move_to(self.get_row_index(key))
        return True

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        height = self._page()
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self._move_to(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move_to(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move_to(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self._move_to(self.cursor_row + self._page())

    def action_scroll_top(self) -> None:
        self._move_to(0)

    def action_scroll_bottom(self) -> None:
        self._move_to(len(self._order) - 1)

    def action_select_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, self.cursor_row, RowKey(key)))  # type: ignore[arg-type]

    async def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = self._column_at(offset.x + round(self.scroll_x))
            if column is not None:
                index = self.columns_shown.index(column)
                label = Text(self.HEADINGS[column])
                self.post_message(self.HeaderSelected(self, ColumnKey(column), index, label))  # type: ignore[arg-type]
            return
        row = round(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._order):
            self._move_to(row)
            self.action_select_cursor()

    def _column_at(self, x: int) -> str | None:
        for column in self.columns_shown:
            width = self._widths[column]
            if x < width:
                return column
            x -= width
        return None

    # -- drawing ------------------------------------------------------------------------------------------------

    def on_focus(self) -> None:
        self._refresh_all()

    def on_blur(self) -> None:
        self._refresh_all()

    def _refresh_all(self) -> None:
        self._line_cache.clear()
        self._painted.clear()
        self.refresh()

    def _line_token(self, y: int) -> tuple[Any, ...]:
        """What line ``y`` of the widget shows; the line is redrawn only when this changes."""
        if y == 0:
            return ("header", self.sort_column, self.sort_reverse)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._order):
            return ("blank",)
        key = self._order[index]
        row, now = self.rows_by_key[key], self._now
        timed = ()
        if now is not None and self._timed:
            timed = tuple(self.timed_text(row, c, now) for c in self._timed)
            self._steady_until = min(self._steady_until, *(self.timed_changes_at(row, c, now) for c in self._timed))
        # The row and its mark are the same objects while unchanged: comparing tokens is cheap.
        return (key, row, self._marks.get(key), timed, index == self.cursor_row)

    def _refresh_changed(self) -> None:
        """Repaint only the lines whose content changed: bandwidth is the user's."""
        if not self.is_mounted:
            return
        width = self.scrollable_content_region.width
        painted = self._painted
        for y in range(self.scrollable_content_region.height):
            token = self._line_token(y)
            if painted.get(y) != token:
                painted[y] = token  # asked for: another change before the frame need not ask again
                self.refresh(Region(0, y, width, 1))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._painted.clear()

    def watch_scroll_x(self, old: float, new: float) -> None:
        super().watch_scroll_x(old, new)
        self._painted.clear()

    def _style(self, base: Style, spec: str) -> Style:
        found = self._styles.get((base, spec))
        if found is None:
            found = self._styles[(base, spec)] = base + Style.parse(spec) if spec else base
        return found

    def _strip(self, texts: Sequence[str], specs: Sequence[str], base: Style, over: Style | None) -> Strip:
        segments = []
        pad = " " * _PADDING
        for column, text, spec in zip(self.columns_shown, texts, specs, strict=True):
            style = self._style(base, spec)
            if over is not None:
                style = style + over
            inner = self._widths[column] - 2 * _PADDING
            segments.append(Segment(pad + set_cell_size(text, inner) + pad, style))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        token = self._line_token(y)
        self._painted[y] = token
        scroll_x = round(self.scroll_x)
        base = self.line_style()
        if token[0] == "blank":
            return Strip.blank(width, base)
        if token[0] == "header":
            header = self.get_component_rich_style("virtual-table--header")
            strip = self._strip(
                [self._heading(c) for c in self.columns_shown], [""] * len(self.columns_shown), base + header, None
            )
            return strip.crop_extend(scroll_x, scroll_x + width, base + header)
        key, row, mark, timed, is_cursor = token
        cached = self._line_cache.get(key)
        stamp = (row, mark, timed, is_cursor, base)
        if cached is not None and cached[0] == stamp:
            strip = cached[1]
        else:
            cells = self.cells(row, mark)
            clock = dict(zip(self._timed, timed, strict=True)) if timed else {}
            texts = [clock.get(c, t) for c, (t, _) in zip(self.columns_shown, cells, strict=True)]
            over = self.get_component_rich_style("virtual-table--cursor") if is_cursor else None
            strip = self._strip(texts, [s for _, s in cells], base, over)
            if len(self._line_cache) >= _LINE_CACHE_MAX:
                self._line_cache.clear()
            self._line_cache[key] = (stamp, strip)
        fill = base + self.get_component_rich_style("virtual-table--cursor") if is_cursor else base
        return strip.crop_extend(scroll_x, scroll_x + width, fill)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._line_cache.clear()
        self._painted.clear()
