"""Static pods from a manifest directory, and their mirror pods."""

from __future__ import annotations

import pytest
from podmodel.pod import Pod, Toleration

from services.node_agent.logic.static_pods import (
    CONFIG_HASH,
    CONFIG_MIRROR,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    ManifestDiff,
    StaticPodError,
    content_hash,
    diff_manifests,
    is_manifest_name,
    is_mirror_pod,
    is_static_pod,
    mirror_pod,
    mirror_pod_action,
    orphaned_mirror_pods,
    static_pods_from_manifest,
)
from tests.unit.node_agent.builders import T0

MANIFEST = """
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  labels: {component: etcd, tier: control-plane}
spec:
  containers:
  - name: etcd
    image: etcd:3.5
"""

PATH = "/etc/podbus/manifests/etcd.yaml"


def load(content: str = MANIFEST, node: str = "Node-1", path: str = PATH) -> Pod:
    (pod,) = static_pods_from_manifest(path, content, node, seen=T0)
    return pod


def test_static_pod_is_named_for_the_node_and_bound_to_it() -> None:
    pod = load()
    assert pod.metadata.name == "etcd-node-1"
    assert pod.metadata.namespace == "default"
    assert pod.spec.node_name == "Node-1"
    assert pod.status.phase == "Pending"


def test_static_pod_annotations_and_no_execute_toleration() -> None:
    pod = load()
    ann = pod.metadata.annotations
    assert ann[CONFIG_HASH] == pod.metadata.uid
    assert ann[CONFIG_SOURCE] == "file"
    assert ann[CONFIG_SEEN] == "2023-11-14T22:13:20Z"
    assert Toleration(operator="Exists", effect="NoExecute") in pod.spec.tolerations
    assert is_static_pod(pod) and not is_mirror_pod(pod)


def test_uid_is_stable_and_depends_on_node_path_and_content() -> None:
    uid = load().metadata.uid
    assert len(uid) == 32
    assert load().metadata.uid == uid
    # Formatting alone does not change the pod.
    assert load(MANIFEST.replace("  labels:", "\n  labels:")).metadata.uid == uid
    assert load(node="node-2").metadata.uid != uid
    assert load(path="/etc/podbus/manifests/other.yaml").metadata.uid != uid
    assert load(MANIFEST.replace("etcd:3.5", "etcd:3.6")).metadata.uid != uid


def test_namespace_in_the_manifest_is_kept() -> None:
    pod = load(MANIFEST.replace("  name: etcd\n", "  name: etcd\n  namespace: kube-system\n"))
    assert pod.metadata.namespace == "kube-system"


@pytest.mark.parametrize(
    "content",
    [
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}",
        "kind: Pod\nmetadata: {name: x}\nspec: {containers: []}",
        ": not yaml [",
        "",
    ],
)
def test_bad_manifests_are_rejected(content: str) -> None:
    with pytest.raises(StaticPodError):
        static_pods_from_manifest(PATH, content, "node-1", seen=T0)


def test_mirror_pod_mirrors_labels_and_is_owned_by_the_node() -> None:
    static = load()
    mirror = mirror_pod(static, "Node-1", "node-uid")
    assert mirror.metadata.name == static.metadata.name
    assert mirror.metadata.labels == {"component": "etcd", "tier": "control-plane"}
    assert mirror.metadata.annotations[CONFIG_MIRROR] == static.metadata.uid
    assert mirror.metadata.uid == ""
    (owner,) = mirror.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Node",
        "Node-1",
        "node-uid",
        True,
    )
    assert mirror.spec == static.spec
    mirror.spec.containers[0].image = "changed"
    assert static.spec.containers[0].image == "etcd:3.5"
    assert is_mirror_pod(mirror)


def test_mirror_pod_action() -> None:
    static = load()
    mirror = mirror_pod(static, "Node-1", "node-uid")
    assert mirror_pod_action(static, None) == "create"
    assert mirror_pod_action(static, mirror) == "keep"
    edited = load(MANIFEST.replace("etcd:3.5", "etcd:3.6"))
    assert mirror_pod_action(edited, mirror) == "recreate"
    mirror.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    assert mirror_pod_action(static, mirror) == "recreate"


def test_orphaned_mirror_pods_are_those_without_a_static_pod() -> None:
    static = load()
    kept = mirror_pod(static, "Node-1", "u")
    gone = mirror_pod(load(MANIFEST.replace("name: etcd\n", "name: api\n", 1)), "Node-1", "u")
    assert orphaned_mirror_pods([kept, gone], [static]) == [gone]


def test_dot_files_are_ignored() -> None:
    assert is_manifest_name("etcd.yaml")
    assert not is_manifest_name(".etcd.yaml.swp")
    assert not is_manifest_name("")


def test_directory_scan_diff() -> None:
    before = {"/m/a.yaml": "1", "/m/b.yaml": "2", "/m/c.yaml": "3"}
    after = {"/m/a.yaml": "1", "/m/b.yaml": "22", "/m/d.yaml": "4", "/m/.d.yaml.swp": "5"}
    assert diff_manifests(before, after) == ManifestDiff(
        added=("/m/d.yaml",), removed=("/m/c.yaml",), changed=("/m/b.yaml",)
    )
    assert diff_manifests(after, after).empty
    assert content_hash("x") == content_hash(b"x") != content_hash("y")
