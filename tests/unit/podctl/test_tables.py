"""`get` tables per kind, with kubectl's columns."""

from __future__ import annotations

from clients.podctl.age import parse_time
from clients.podctl.tables import render

NOW = parse_time("2024-01-01T00:10:00Z") or 0.0
CREATED = "2024-01-01T00:00:00Z"


def test_pods_table_and_wide_columns() -> None:
    p = {
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": CREATED},
        "spec": {"containers": [{"name": "web"}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [{"name": "web", "ready": True, "state": {"running": {}}}],
        },
    }
    assert render("Pod", [p], NOW) == (
        "NAME    READY   STATUS    RESTARTS   AGE\nweb-1   1/1     Running   0          10m\n"
    )
    wide = render("Pod", [p], NOW, wide=True).splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert wide[1].split()[5:] == ["10.0.0.5", "n1", "<none>", "<none>"]


def test_all_namespaces_adds_namespace_column() -> None:
    p = {"metadata": {"name": "a", "namespace": "ns1", "creationTimestamp": CREATED}}
    lines = render("Pod", [p], NOW, all_namespaces=True).splitlines()
    assert lines[0].startswith("NAMESPACE   NAME")
    assert lines[1].startswith("ns1         a ")


def test_deployment_replicaset_statefulset_rows() -> None:
    d = {
        "metadata": {"name": "web", "creationTimestamp": CREATED},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}},
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert render("Deployment", [d], NOW).splitlines()[1].split() == ["web", "2/3", "3", "2", "10m"]
    assert render("Deployment", [d], NOW, wide=True).splitlines()[1].split()[5:] == [
        "web",
        "busybox",
        "app=web",
    ]
    rs = {
        "metadata": {"name": "web-abc", "creationTimestamp": CREATED},
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert render("ReplicaSet", [rs], NOW).splitlines()[1].split() == [
        "web-abc",
        "3",
        "3",
        "1",
        "10m",
    ]
    sts = {
        "metadata": {"name": "db", "creationTimestamp": CREATED},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 1},
    }
    assert render("StatefulSet", [sts], NOW).splitlines()[1].split() == ["db", "1/2", "10m"]


def test_job_status_completions_and_duration() -> None:
    job = {
        "metadata": {"name": "pi", "creationTimestamp": CREATED},
        "spec": {"completions": 1},
        "status": {
            "succeeded": 1,
            "startTime": "2024-01-01T00:00:01Z",
            "completionTime": "2024-01-01T00:00:06Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert render("Job", [job], NOW).splitlines() == [
        "NAME   STATUS     COMPLETIONS   DURATION   AGE",
        "pi     Complete   1/1           5s         10m",
    ]
    running = {"metadata": {"name": "x", "creationTimestamp": CREATED}, "spec": {}, "status": {}}
    assert render("Job", [running], NOW).splitlines()[1].split() == ["x", "Running", "0/1", "10m"]


def test_nodes_show_ready_and_cordon() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": CREATED,
            "labels": {"node-role.kubernetes.io/control-plane": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "podbus"},
        },
    }
    assert render("Node", [node], NOW).splitlines()[1].split() == [
        "n1",
        "Ready,SchedulingDisabled",
        "control-plane",
        "10m",
        "podbus",
    ]


def test_events_table() -> None:
    ev = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "reason": "Scheduled",
        "type": "Normal",
        "message": "Successfully assigned default/web-1 to n1",
        "lastTimestamp": "2024-01-01T00:09:55Z",
    }
    assert render("Event", [ev], NOW).splitlines() == [
        "LAST SEEN   TYPE     REASON      OBJECT      MESSAGE",
        "5s          Normal   Scheduled   pod/web-1   Successfully assigned default/web-1 to n1",
    ]
