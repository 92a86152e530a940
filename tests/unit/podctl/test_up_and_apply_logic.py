"""podbus up's runtime choice and live view; apply's three-way metadata merge;
watch rows that keep their columns."""

from __future__ import annotations

import json

from clients.podctl.apply_merge import LAST_APPLIED, merged_object, unchanged
from clients.podctl.live_view import ServiceState, changes, demo_progress, screen
from clients.podctl.podbus_cli import choose_runtime
from clients.podctl.tabwriter import column_widths, remembered_row


def test_runtime_is_oci_only_as_root_with_runc_and_the_runtime_built() -> None:
    assert choose_runtime("auto", True, "/usr/sbin/runc", True)[0] == "oci"
    runtime, why = choose_runtime("auto", False, None, True)
    assert runtime == "simulated"
    assert why == (
        "runtime simulated: containers do not really run (not running as root, runc not found)"
    )
    assert choose_runtime("simulated", True, "/usr/sbin/runc", True)[0] == "simulated"
    assert "not built" in choose_runtime("auto", True, "/usr/sbin/runc", False)[1]


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "containers": [{"name": "web"}]},
    "status": {
        "phase": "Running",
        "containerStatuses": [{"name": "web", "ready": True, "state": {"running": {}}}],
    },
}
NODE = {"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def test_change_lines_say_only_what_changed() -> None:
    lines, seen = changes({}, [NODE], [POD], 0.0)
    assert lines == ["node n1: Ready", "pod default/web-1: Running 1/1 on n1"]
    assert changes(seen, [NODE], [POD], 0.0)[0] == []
    assert changes(seen, [NODE], [], 0.0)[0] == ["pod default/web-1: deleted"]


def test_screen_lists_services_nodes_and_pods() -> None:
    svc = ServiceState("scheduler", 42, True, 0.0)
    text = screen("podbus up", [svc], [NODE], [POD], 125.0, "demo: all examples are up")
    assert "scheduler   42    running   2m5s" in text
    assert "n1     Ready" in text and "default     web-1" in text
    assert text.rstrip().endswith("demo: all examples are up")


def test_demo_progress_per_kind() -> None:
    objs = [
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3},
            "status": {"readyReplicas": 3},
        },
        {"kind": "Job", "metadata": {"name": "j"}, "status": {}},
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    ]
    done, waiting = demo_progress(objs)
    assert done == ["deployment.apps/web 3/3", "pod/p Ready"]
    assert waiting == ["job.batch/j Running"]


def manifest() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1},
    }


def test_apply_keeps_what_others_added_and_drops_what_the_user_removed() -> None:
    first = merged_object(manifest(), None)
    assert json.loads(first["metadata"]["annotations"][LAST_APPLIED])["spec"] == {"replicas": 1}
    stored = json.loads(json.dumps(first))
    stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    stored["metadata"]["labels"]["added-by-someone"] = "x"
    again = merged_object(manifest(), stored)
    assert unchanged(again, stored)
    edited = manifest()
    del edited["metadata"]["labels"]
    edited["spec"]["replicas"] = 2
    out = merged_object(edited, stored)
    assert out["metadata"]["labels"] == {"added-by-someone": "x"}
    assert out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert not unchanged(out, stored)


def test_apply_keeps_a_pods_binding() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    stored = merged_object(pod, None)
    stored["spec"]["nodeName"] = "n1"
    again = merged_object(pod, stored)
    assert again["spec"]["nodeName"] == "n1" and unchanged(again, stored)


def test_watch_rows_keep_the_columns_of_the_first_table() -> None:
    widths = column_widths([["NAME", "READY", "STATUS"], ["web-1", "1/1", "Running"]])
    line, widths = remembered_row(["web-1", "0/1", "Terminating"], widths)
    assert line == "web-1   0/1     Terminating\n"
    line, widths = remembered_row(["a-much-longer-name", "0/1", "Pending"], widths)
    assert line == "a-much-longer-name   0/1     Pending\n"


def test_apply_keeps_spec_fields_a_controller_set() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}},
    }
    stored = merged_object(job, None)
    stored["spec"]["selector"] = {"matchLabels": {"controller-uid": "u"}}
    stored["spec"]["template"]["metadata"] = {"labels": {"controller-uid": "u"}}
    again = merged_object(job, stored)
    assert again["spec"]["selector"] == {"matchLabels": {"controller-uid": "u"}}
    assert unchanged(again, stored)
    edited = json.loads(json.dumps(job))
    edited["spec"]["backoffLimit"] = 1
    assert not unchanged(merged_object(edited, stored), stored)
