"""FailedScheduling messages worded and sorted as kube-scheduler does."""

from __future__ import annotations

from services.scheduler.framework import Code, Failure
from services.scheduler.messages import (
    fit_error_message,
    preemption_message,
    reason_counts,
    truncate_message,
)


def test_reasons_are_counted_per_node_and_sorted_as_strings() -> None:
    cpu = Failure("NodeResourcesFit", Code.UNSCHEDULABLE, "Insufficient cpu")
    taint = Failure(
        "TaintToleration",
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
        "node(s) had untolerated taint {dedicated: gpu}",
    )
    counts = reason_counts({cpu: 2, taint: 1})
    assert fit_error_message(3, counts) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "2 Insufficient cpu."
    )


def test_a_node_with_several_reasons_counts_each() -> None:
    both = Failure(
        "NodeResourcesFit", Code.UNSCHEDULABLE, "Insufficient cpu", "Insufficient memory"
    )
    assert fit_error_message(1, reason_counts({both: 1})) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    )


def test_prefilter_message_replaces_node_reasons_and_postfilter_follows() -> None:
    msg = fit_error_message(
        2, {"x": 2}, pre_filter_msg="pod has unbound PVCs", post_filter_msg="preemption: no"
    )
    assert msg == "0/2 nodes are available: pod has unbound PVCs. preemption: no"


def test_preemption_message_is_prefixed() -> None:
    assert preemption_message("not eligible") == "preemption: not eligible"
    assert preemption_message("") == ""


def test_long_messages_are_truncated_for_events() -> None:
    out = truncate_message("x" * 2000)
    assert len(out) == 1024 and out.endswith(" ...")
