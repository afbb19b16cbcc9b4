"""Waits of a headless poll loop (``--watch``, ``serve``): a poll given up as soon as the loop is told to stop,
and a sleep until the next poll that ends early with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """``stop`` was set while waiting."""


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``work``, but give up on it (cancelled) as soon as ``stop`` is set: then ``Stopped``."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Stopped


async def sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True
