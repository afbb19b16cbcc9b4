"""What the live view needs from a source of (snapshot, events): the one poll engine on the Cloudflare API, a
``tunneltop serve`` server it is attached to, or a recording it replays. The live view (``ui/polling.py``) only
calls what ``LiveSource`` names, so any of them can feed it. ``PollEngine`` satisfies it as is (``--watch`` and
serve run it plainly); the live view's default wraps it in a ``ThreadedSource`` (``api_source`` below is where
mypy checks that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.model.expect import Expectations
from tunneltop.poll.engine import STARTUP_BURST, PollEngine, PollOutcome
from tunneltop.poll.local import LocalReadyProbe
from tunneltop.poll.target import Target
from tunneltop.poll.threaded import EngineThread, ThreadedSource


class LiveSource(Protocol):
    """A source of the live view's data, polled one poll at a time.

    The contract, as the live view relies on it:

    - ``poll()`` makes one poll and never raises for a fault of the data's origin (HTTP errors, a server gone, a
      truncated file): it returns a ``PollOutcome`` with either a complete ``Snapshot`` and the change events since
      the last one, or ``error`` (and the failure-streak events, see ``poll.engine``: a ``poll_failed`` event when
      a streak starts, ``poll_recovered`` when it ends), or ``holding`` (nothing wrong, no poll yet: say why). The
      view keeps showing the last good snapshot while polls fail, and marks it stale. Polls never overlap: the
      next ``poll()`` is called only after the last one returned.
    - ``next_poll_delay()``: seconds from now until the view should call ``poll()`` again after one ended (the
      interval, or longer when something must be waited for: a budget, a server's backoff, the next recorded
      poll). ``next_poll_in()``: seconds until a poll has anything to do at all; the view waits that long, and no
      more, when the user asks to refresh or resumes from a pause.
    - ``refresh(ids)``: the user asked for fresh data on these tunnels (none: what is in view) — a reorder, never a
      bypass of any limit. ``set_in_view(ids)``: the tunnels on screen now, to be read first. Both may be no-ops.
    - ``interval``: the seconds between polls the user asked for; the view sets it at start and on ``+``/``-``.
      ``effective_interval``: what the source can really keep (the header shows it when longer than asked).
    - ``named``: True when only tunnels the user named are watched (all of them are in view).
    - ``status``: the Cloudflare request budget's figures for the header, or None for a source that sends no
      request to Cloudflare (attach, replay).
    - ``usage_errors``: tunnels named that match none, each said once: the view shows and then empties the list.

    A source other than the API also has a ``label`` (see ``Labelled``: the header's badge, e.g. "attached to
    http://host:9090", "REPLAY 03:12:00Z"), and one holding a connection or a file an ``aclose()`` (see
    ``Closable``) that the view awaits when it ends. Credentials never appear in a label.
    """

    usage_errors: list[UsageError]

    @property
    def interval(self) -> float: ...

    @interval.setter
    def interval(self, seconds: float) -> None: ...

    @property
    def effective_interval(self) -> float: ...

    @property
    def named(self) -> bool: ...

    @property
    def status(self) -> BudgetStatus | None: ...

    async def poll(self) -> PollOutcome: ...

    def next_poll_delay(self) -> float: ...

    def next_poll_in(self) -> float: ...

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None: ...

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None: ...


@runtime_checkable
class Labelled(Protocol):
    """A source that is not the Cloudflare API says what it is, for the header's badge."""

    @property
    def label(self) -> str: ...


@runtime_checkable
class Closable(Protocol):
    """A source that holds a connection or a file: the live view closes it when it ends."""

    async def aclose(self) -> None: ...


def badge(source: object) -> str | None:
    """The header's badge for ``source``: its label, or None for the API (the header says "API" in its budget)."""
    return source.label if isinstance(source, Labelled) else None


def headless_engine(client: CloudflareClient, target: Target, *, interval: float) -> PollEngine:
    """The one poll engine as the headless front ends (``--watch``, serve) run it on their target: the start-up
    burst, the config file's expectations, the tunnels' reach (config drift is told by the remote version) and
    cloudflared's /ready on this host, as the live view's ``api_source`` reads them."""
    return PollEngine(
        client,
        target.account_id,
        target.refs,
        interval=interval,
        min_burst=STARTUP_BURST,
        expectations=target.expectations,
        reach=True,
        local=target.local,
    )


def api_source(
    client: CloudflareClient,
    account_id: str | None,
    refs: Sequence[str],
    *,
    interval: float,
    now: Callable[[], datetime],
    account_name: str | None = None,
    expectations: Expectations | None = None,
    local: LocalReadyProbe | None = None,
    thread: EngineThread | None = None,
) -> LiveSource:
    """The live view's default source: the one poll engine on the Cloudflare API, with a start-up burst so that a
    small account's first screen comes in one go (then the budget paces requests). It runs on a thread of its own
    (``poll/threaded.py``): decoding and diffing a large account's poll never stalls the screen. Every source
    made on one ``client`` must be given the same ``thread`` (its connections belong to that thread's loop).
    Closing the source closes ``client`` there (the view's own ``aclose`` of it afterwards does nothing)."""
    return ThreadedSource(
        lambda: PollEngine(
            client,
            account_id,
            refs,
            interval=interval,
            min_burst=STARTUP_BURST,
            now=now,
            account_name=account_name,
            expectations=expectations,
            reach=True,
            local=local,
        ),
        on_close=client.aclose,
        thread=thread,
    )
