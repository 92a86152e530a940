"""Work that changes the namespaces of the thread it runs in (unshare(2),
setns(2) with CLONE_NEWNET) runs on a thread of its own that ends right
after, so no other work ever runs in those namespaces; the event loop
awaits it without blocking."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_fresh_thread(work: Callable[[], T], name: str) -> T:
    """`work()` on a new thread (never reused); its result or exception."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, value, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await done


def _settle(fut: asyncio.Future[T], value: T | None, exc: BaseException | None) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)  # type: ignore[arg-type]
