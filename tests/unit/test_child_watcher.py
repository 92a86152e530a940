"""The node-agent waits for its container shims through pidfds on the
event loop, not with a thread per child (Python 3.11's default)."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings

import pytest
from servicekit.runner import use_pidfd_child_watcher


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ uses pidfds by itself")
async def test_children_are_reaped_without_a_thread_each() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        before = asyncio.get_child_watcher()
    try:
        assert use_pidfd_child_watcher()
        threads = threading.active_count()
        procs = [
            await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.2; exit {i}")
            for i in range(8)
        ]
        assert threading.active_count() == threads  # the default would add 8
        async with asyncio.timeout(10):
            codes = [await p.wait() for p in procs]
        assert codes == list(range(8))
    finally:  # later tests get the default watcher back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(before)
