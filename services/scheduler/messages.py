"""The FailedScheduling message kubectl shows, worded as kube-scheduler's
FitError.Error() words it:

    0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.

Each node's reasons are counted; "<count> <reason>" strings are sorted as
strings (Go's sort.Strings) and joined with ", ". A PreFilter rejection
replaces the per-node part; the PostFilter (preemption) message follows.
Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from services.scheduler.framework import Failure

NO_NODE_AVAILABLE = "0/{} nodes are available"
NO_NODES_REGISTERED = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."


def reason_counts(failures: Mapping[Failure, int] | Iterable[tuple[Failure, int]]) -> Counter[str]:
    """How many nodes gave each reason, from (failure, node count) pairs."""
    counts: Counter[str] = Counter()
    items = failures.items() if isinstance(failures, Mapping) else failures
    for failure, n in items:
        for reason in failure.reasons:
            counts[reason] += n
    return counts


def sorted_reasons(counts: Mapping[str, int]) -> list[str]:
    """sortReasonsHistogram: "<n> <reason>" strings in string order."""
    return sorted(f"{n} {reason}" for reason, n in counts.items())


def fit_error_message(
    num_all_nodes: int,
    counts: Mapping[str, int],
    pre_filter_msg: str = "",
    post_filter_msg: str = "",
) -> str:
    """FitError.Error()."""
    msg = NO_NODE_AVAILABLE.format(num_all_nodes) + ":"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        reasons = sorted_reasons(counts)
        if reasons:
            msg += " " + ", ".join(reasons) + "."
    if post_filter_msg:
        msg += f" {post_filter_msg}"
    return msg


def preemption_message(message: str) -> str:
    """DefaultPreemption.PostFilter prefixes its status message."""
    return f"preemption: {message}" if message else ""


NOTE_LENGTH_LIMIT = 1024
"""validation.NoteLengthLimit: events and conditions truncate longer messages."""


def truncate_message(message: str) -> str:
    """truncateMessage: keep the message under the event note limit."""
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    suffix = " ..."
    return message[: NOTE_LENGTH_LIMIT - len(suffix)] + suffix
