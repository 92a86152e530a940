"""PrioritySort: the queue order. Higher priority first; among equals, the
pod that entered the queue first. Pure: no I/O.
"""

from __future__ import annotations

NAME = "PrioritySort"


def sort_key(priority: int, timestamp: float, seq: int) -> tuple[int, float, int]:
    """A key for a min-heap: (-priority, enqueue time, arrival sequence)."""
    return (-priority, timestamp, seq)


def less(a_priority: int, a_timestamp: float, b_priority: int, b_timestamp: float) -> bool:
    """PrioritySort.Less."""
    return a_priority > b_priority or (a_priority == b_priority and a_timestamp < b_timestamp)
