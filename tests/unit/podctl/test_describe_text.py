"""describe's layout: kubectl's label column, sections and events table."""

from __future__ import annotations

from clients.podctl.age import parse_time
from clients.podctl.describe_text import (
    describe_deployment,
    describe_generic,
    describe_pod,
    events_for,
    toleration_text,
)

NOW = parse_time("2024-01-01T00:10:00Z") or 0.0

POD = {
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "default",
        "uid": "u1",
        "labels": {"app": "web"},
        "ownerReferences": [
            {
                "kind": "ReplicaSet",
                "name": "web-abc",
                "controller": True,
                "uid": "r",
                "apiVersion": "apps/v1",
            }
        ],
    },
    "spec": {
        "nodeName": "n1",
        "containers": [
            {
                "name": "web",
                "image": "busybox",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2},
            }
        ],
    },
    "status": {
        "phase": "Running",
        "hostIP": "10.1.0.1",
        "podIP": "10.0.0.5",
        "podIPs": [{"ip": "10.0.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "web",
                "ready": True,
                "restartCount": 1,
                "state": {"running": {"startedAt": "2024-01-01T00:01:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "Error"}},
            }
        ],
    },
}

EVENTS = [
    {
        "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1"},
        "type": "Normal",
        "reason": "Scheduled",
        "message": "Successfully assigned default/web-1 to n1",
        "source": {"component": "default-scheduler"},
        "lastTimestamp": "2024-01-01T00:00:00Z",
    },
    {
        "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1"},
        "type": "Warning",
        "reason": "Unhealthy",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
        "source": {"component": "kubelet"},
        "count": 3,
        "firstTimestamp": "2024-01-01T00:05:00Z",
        "lastTimestamp": "2024-01-01T00:09:00Z",
    },
    {"involvedObject": {"kind": "Pod", "name": "other", "uid": "u2"}, "reason": "Scheduled"},
]


def test_pod_description_has_kubectl_sections() -> None:
    text = describe_pod(POD, events_for(POD, EVENTS), NOW)
    lines = text.splitlines()
    assert lines[0] == "Name:             web-1"
    assert "Node:             n1/10.1.0.1" in lines
    assert "Controlled By:  ReplicaSet/web-abc" in lines
    assert "    State:          Running" in lines
    assert "    Last State:     Terminated" in lines
    assert "      Exit Code:    137" in lines
    assert (
        "    Readiness:      http-get http://:8080/ delay=0s timeout=1s period=2s "
        "#success=1 #failure=3" in lines
    )
    assert "Events:" in lines
    assert "  Type     Reason     Age               From               Message" in lines
    assert "  Normal   Scheduled  10m" in text
    assert "Unhealthy  60s (x3 over 5m)  kubelet" in text
    assert "other" not in text


def test_no_events_says_none() -> None:
    assert describe_pod(POD, [], NOW).rstrip().endswith("Events:          <none>")


def test_deployment_description_shows_replicas_and_replicasets() -> None:
    d = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox"}]},
            },
        },
        "status": {
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
            ],
        },
    }
    rss = [
        {
            "metadata": {
                "name": "web-new",
                "annotations": {"deployment.kubernetes.io/revision": "2"},
            },
            "spec": {"replicas": 3},
            "status": {"replicas": 3},
        },
        {
            "metadata": {
                "name": "web-old",
                "annotations": {"deployment.kubernetes.io/revision": "1"},
            },
            "spec": {"replicas": 0},
            "status": {"replicas": 0},
        },
    ]
    text = describe_deployment(d, [], NOW, rss)
    assert (
        "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable"
        in text
    )
    assert "NewReplicaSet:   web-new (3/3 replicas created)" in text
    assert "OldReplicaSets:  <none>" in text
    assert ["Available", "True", "MinimumReplicasAvailable"] in [
        ln.split() for ln in text.splitlines()
    ]


def test_job_and_node_descriptions() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"completions": 1, "parallelism": 1},
        "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    text = describe_generic("Job", job, [], NOW)
    assert "Pods Statuses:" in text and "0 Active (0 Ready) / 1 Succeeded / 0 Failed" in text
    node = {
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"unschedulable": True},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.1"}]},
    }
    text = describe_generic("Node", node, [], NOW)
    assert ["Unschedulable:", "true"] in [ln.split() for ln in text.splitlines()]
    assert "Namespace:" not in text


def test_toleration_text_matches_kubectl() -> None:
    assert (
        toleration_text(
            {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        )
        == "k:NoExecute op=Exists for 300s"
    )
    assert toleration_text({"operator": "Exists"}) == "op=Exists"
    assert toleration_text({"key": "k", "value": "v", "effect": "NoSchedule"}) == "k=v:NoSchedule"


def test_last_applied_configuration_is_not_described() -> None:
    pod = {
        **POD,
        "metadata": {
            **POD["metadata"],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"},
        },
    }
    text = describe_pod(pod, [], NOW)
    assert "last-applied" not in text and "Annotations:      team: a" in text
