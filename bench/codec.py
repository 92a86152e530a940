"""Decode and encode of a realistic Pod: podmodel against the kubernetes
Python client, measured in the same run.

Prints one figure a line. The reference is the official client's
ApiClient.deserialize of the response text (what it does with every API
response) into V1Pod, and
sanitize_for_serialization for encoding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import msgspec
from kubernetes.client import ApiClient
from podmodel.codec import encode, encode_json
from podmodel.pod import Pod


def probe(kind: str, port: int) -> dict[str, Any]:
    handlers: dict[str, dict[str, Any]] = {
        "http": {
            "httpGet": {
                "path": "/healthz",
                "port": port,
                "httpHeaders": [{"name": "X-Probe", "value": "1"}],
            }
        },
        "tcp": {"tcpSocket": {"port": port}},
        "exec": {"exec": {"command": ["cat", "/tmp/healthy"]}},
    }
    return {
        **handlers[kind],
        "initialDelaySeconds": 3,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def container(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example/{name}:1.2.3",
        "command": ["/bin/server"],
        "args": ["--port", str(port), "--log-level=info"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "MODE", "value": "production"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "cache", "mountPath": "/cache", "readOnly": True},
        ],
        "livenessProbe": probe("http", port),
        "readinessProbe": probe("tcp", port),
        "startupProbe": probe("exec", port),
        "securityContext": {
            "runAsUser": 1000,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
        "imagePullPolicy": "IfNotPresent",
    }


def status(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "ready": True,
        "started": True,
        "restartCount": 1,
        "image": f"registry.example/{name}:1.2.3",
        "imageID": "sha256:" + "ab" * 32,
        "containerID": "containerd://" + "cd" * 32,
        "state": {"running": {"startedAt": "2026-11-25T06:00:05Z"}},
        "lastState": {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": "2026-11-25T05:00:00Z",
                "finishedAt": "2026-11-25T06:00:00Z",
            }
        },
    }


POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-7d4b9c-x2x7k",
        "namespace": "default",
        "uid": "3f1c2b9e-8f6a-4a57-9d0c-2b7e6f5a1c3d",
        "resourceVersion": "123456",
        "generation": 1,
        "creationTimestamp": "2026-11-25T06:00:00Z",
        "labels": {"app": "web", "pod-template-hash": "7d4b9c", "tier": "frontend"},
        "annotations": {"podbus.io/traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d4b9c",
                "uid": "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "containers": [
            container("app", 8080),
            container("metrics", 9090),
            container("proxy", 8443),
        ],
        "volumes": [
            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "cache", "hostPath": {"path": "/var/cache/web", "type": "DirectoryOrCreate"}},
        ],
        "securityContext": {
            "fsGroup": 2000,
            "runAsGroup": 3000,
            "supplementalGroups": [4000],
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "nodeName": "node-17",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "nodeSelector": {"disktype": "ssd"},
    },
    "status": {
        "phase": "Running",
        "podIP": "10.88.0.17",
        "hostIP": "192.168.1.17",
        "startTime": "2026-11-25T06:00:01Z",
        "qosClass": "Burstable",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": "2026-11-25T06:00:06Z"}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [status("app"), status("metrics"), status("proxy")],
    },
}


DECODE_GOAL = 50.0


def rate(fn: Callable[[], object], min_seconds: float = 1.0) -> float:
    """Calls per second, over at least min_seconds."""
    n, batch = 0, 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed
        batch *= 2


def main() -> None:
    text = json.dumps(POD)
    data = text.encode()
    pod = msgspec.json.decode(data, type=Pod)
    packed = encode(pod)
    assert msgspec.msgpack.decode(packed, type=Pod) == pod
    client = ApiClient()
    v1pod = client.deserialize(text, "V1Pod", "application/json")
    assert v1pod.spec.containers[2].liveness_probe.http_get.port == 8443

    json_dec = msgspec.json.Decoder(Pod)
    mp_dec = msgspec.msgpack.Decoder(Pod)
    dec_json = rate(lambda: json_dec.decode(data))
    dec_mp = rate(lambda: mp_dec.decode(packed))
    dec_k8s = rate(lambda: client.deserialize(text, "V1Pod", "application/json"))
    enc_json = rate(lambda: encode_json(pod))
    enc_mp = rate(lambda: encode(pod))
    enc_k8s = rate(lambda: json.dumps(client.sanitize_for_serialization(v1pod)))

    print(f"pod size: {len(data)} bytes json, {len(packed)} bytes msgpack")
    # The reference's speed depends on its version (the generated models of
    # kubernetes 29 copy a Configuration per object and decode ~6x slower).
    print(f"kubernetes client version: {kubernetes.__version__}")
    print(f"decode podmodel json: {dec_json:,.0f} ops/s")
    print(f"decode podmodel msgpack: {dec_mp:,.0f} ops/s")
    print(f"decode kubernetes client: {dec_k8s:,.0f} ops/s")
    print(f"decode vs kubernetes client: {dec_json / dec_k8s:.1f}x")
    print(f"decode msgpack vs kubernetes client: {dec_mp / dec_k8s:.1f}x")
    print(f"encode podmodel json: {enc_json:,.0f} ops/s")
    print(f"encode podmodel msgpack: {enc_mp:,.0f} ops/s")
    print(f"encode kubernetes client: {enc_k8s:,.0f} ops/s")
    print(f"encode vs kubernetes client: {enc_json / enc_k8s:.1f}x")
    verdict = "met" if dec_json / dec_k8s >= DECODE_GOAL else "NOT met"
    print(f"decode goal (>= {DECODE_GOAL:.0f}x kubernetes client): {verdict}")


if __name__ == "__main__":
    main()
