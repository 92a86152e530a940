"""Manifest loading: YAML and JSON in every shape users write, kinds podbus
skips, unknown fields reported with their paths, decode and validation
errors named by document and field, and kubectl-like printing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from podmodel.manifest import (
    decode_error_message,
    dump_json,
    dump_yaml,
    load_manifest_files,
    load_manifests,
    parse_documents,
    unknown_fields,
)
from podmodel.meta import KubeObject
from podmodel.pod import Pod
from podmodel.workloads import Deployment

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: busybox
"""


def _names(objects: list[KubeObject]) -> list[str]:
    return [o.metadata.name for o in objects]


def test_block_yaml_pod_loads_defaulted_and_validated() -> None:
    result = load_manifests(POD.format(name="p1"), "pod.yaml")
    assert result.errors == [] and result.warnings == []
    (pod,) = result.objects
    assert isinstance(pod, Pod)
    assert pod.metadata.namespace == "default"  # defaults were applied
    assert pod.spec.restart_policy == "Always"
    assert result.ok


def test_flow_style_with_comments_and_trailing_commas_loads() -> None:
    text = """
    # a comment
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "flow", labels: { app: "x", }, },  # trailing commas
      spec: {
        containers: [{ name: "c", image: "busybox", args: ["a", "b",], },],
      },
    }
    """
    result = load_manifests(text)
    assert result.errors == []
    (pod,) = result.objects
    assert isinstance(pod, Pod)
    assert pod.metadata.labels == {"app": "x"}
    assert pod.spec.containers[0].args == ["a", "b"]


def test_json_and_json_streams_load() -> None:
    one = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j1"}}
    one["spec"] = {"containers": [{"name": "c", "image": "busybox"}]}
    two = dict(one, metadata={"name": "j2"})
    assert _names(load_manifests(json.dumps(one)).objects) == ["j1"]
    tabbed = json.dumps(one, indent="\t")  # tabs: valid JSON, not valid YAML indentation
    assert _names(load_manifests(tabbed.encode()).objects) == ["j1"]
    stream = json.dumps(one) + "\n" + json.dumps(two, indent=2)
    assert _names(load_manifests(stream).objects) == ["j1", "j2"]


def test_multi_document_yaml_skips_empty_documents_and_numbers_by_position() -> None:
    text = "---\n" + POD.format(name="a") + "---\n---\n# only a comment\n---\n"
    text += POD.format(name="b").replace("busybox", "busybox\n    foo: 1")
    result = load_manifests(text, "many.yaml")
    assert _names(result.objects) == ["a", "b"]
    assert result.warnings == [
        "many.yaml#4 (Pod/b): spec.containers[0].foo: unknown field, ignored"
    ]


def test_list_kinds_contribute_their_items() -> None:
    text = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: l1}, spec: {containers: [{name: c, image: x}]}}
- {apiVersion: v1, kind: Service, metadata: {name: svc}}
---
apiVersion: v1
kind: PodList
items:
- {metadata: {name: l2}, spec: {containers: [{name: c, image: x}]}}
- {metadata: {name: l3}, spec: {containers: [{name: c, image: x, bogus: 1}]}}
"""
    result = load_manifests(text, "list.yaml")
    assert _names(result.objects) == ["l1", "l2", "l3"]
    assert result.warnings == [
        "list.yaml#1.items[1]: skipped Service/svc: podbus does not run kind Service",
        "list.yaml#2.items[1] (Pod/l3): spec.containers[0].bogus: unknown field, ignored",
    ]
    assert result.errors == []


def test_kinds_podbus_does_not_run_are_skipped_with_a_warning() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: my-nginx}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
""" + POD.format(name="kept")
    result = load_manifests(text, "mixed.yaml")
    assert result.errors == []
    assert _names(result.objects) == ["cfg", "kept"]
    assert result.warnings == [
        "mixed.yaml#1: skipped Service/my-nginx: podbus does not run kind Service",
        "mixed.yaml#2: skipped ServiceAccount/robot: podbus does not run kind ServiceAccount",
    ]


def test_unknown_fields_come_back_as_warnings_with_their_paths() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, managedFields: [], foo: 1}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx
        foo: bar
        livenessProbe:
          grpc: {port: 8080, frobnicate: true}
      - name: d
        image: nginx
        resources: {requests: {cpu: 1}, claims2: []}
"""
    result = load_manifests(text, "deployment.yaml")
    assert result.errors == []
    prefix = "deployment.yaml#1 (Deployment/web): "
    assert result.warnings == [
        prefix + "metadata.managedFields: unknown field, ignored",
        prefix + "metadata.foo: unknown field, ignored",
        prefix + "spec.template.spec.containers[0].foo: unknown field, ignored",
        prefix
        + "spec.template.spec.containers[0].livenessProbe.grpc.frobnicate: unknown field, ignored",
        prefix + "spec.template.spec.containers[1].resources.claims2: unknown field, ignored",
    ]
    (deploy,) = result.objects
    assert isinstance(deploy, Deployment)


def test_unknown_fields_is_pure_and_follows_optionals_lists_and_maps() -> None:
    raw = {
        "kind": "Pod",
        "status": None,
        "spec": {
            "nodeSelector": {"a": "b"},
            "affinity": {"nodeAffinity": {"x": 1}},
            "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"y": 2}}]}],
            "securityContext": None,
        },
        "extra": {"deep": 1},
    }
    before = json.dumps(raw)
    assert unknown_fields(raw, Pod) == [
        "spec.affinity.nodeAffinity.x",
        "spec.containers[0].env[0].valueFrom.y",
        "extra",
    ]
    assert json.dumps(raw) == before


def test_null_fields_read_as_unset() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: n, creationTimestamp: null, labels: null}
spec:
  containers:
  - name: c
    image: x
    env:
    resources: null
status: {}
"""
    result = load_manifests(text)
    assert result.errors == [] and result.warnings == []
    (pod,) = result.objects
    assert isinstance(pod, Pod)
    assert pod.spec.containers[0].env == []


def test_decode_errors_name_the_document_and_field_path() -> None:
    text = (
        POD.format(name="ok")
        + "---\n"
        + """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: "two"}
"""
    )
    result = load_manifests(text, "deployment.yaml")
    assert _names(result.objects) == ["ok"]
    assert result.errors == [
        "deployment.yaml#2 (Deployment/web): spec.replicas: Expected `int`, got `str`"
    ]


def test_validation_errors_name_the_document_and_field_path() -> None:
    text = POD.format(name="bad").replace(
        "image: busybox", "image: busybox\n    livenessProbe: {periodSeconds: 0, exec: {}}"
    )
    result = load_manifests(text.replace("periodSeconds: 0", "periodSeconds: -1"), "p.yaml")
    assert result.objects == []
    assert result.errors
    assert all(
        e.startswith("p.yaml#1 (Pod/bad): spec.containers[0].livenessProbe") for e in result.errors
    )
    assert "p.yaml#1 (Pod/bad): spec.containers[0].livenessProbe.periodSeconds: must be >= 1" in (
        result.errors
    )


def test_missing_required_field_reads_as_kubernetes_required_value() -> None:
    result = load_manifests("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{image: x}]}\n")
    assert result.errors == ["<stdin>#1 (Pod/x): spec.containers[0].name: Required value"]


def test_decode_error_message_turns_msgspec_paths_into_field_paths() -> None:
    assert decode_error_message("Expected `int`, got `str` - at `$.spec.replicas`") == (
        "spec.replicas: Expected `int`, got `str`"
    )
    assert decode_error_message("Object missing required field `key` - at `$.a[0]`") == (
        "a[0].key: Required value"
    )
    assert decode_error_message("Object missing required field `kind`") == "kind: Required value"
    assert (
        decode_error_message("Expected `object`, got `array`") == "Expected `object`, got `array`"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: d}\n",
            'x.yaml#1 (Deployment/d): apiVersion: no matches for kind "Deployment" in version '
            '"apps/v1beta2" (podbus serves Deployment as "apps/v1")',
        ),
        (
            "apiVersion: v1\nkind: pod\nmetadata: {name: p}\n",
            'x.yaml#1 (pod/p): kind: Invalid value: "pod": did you mean "Pod"?',
        ),
        (
            "apiVersion: v1\nmetadata: {name: p}\n",
            "x.yaml#1 (?/p): kind: Required value: kind not set",
        ),
        ("- a\n- b\n", "x.yaml#1: expected an object, got array"),
        ("just a string\n", "x.yaml#1: expected an object, got string"),
    ],
)
def test_documents_that_are_not_podbus_objects_are_errors(text: str, error: str) -> None:
    result = load_manifests(text, "x.yaml")
    assert result.errors == [error]
    assert result.objects == []


def test_invalid_yaml_is_an_error_with_its_line() -> None:
    result = load_manifests("kind: Pod\nmetadata: {name: [\n", "broken.yaml")
    assert len(result.errors) == 1
    assert result.errors[0].startswith("broken.yaml: invalid YAML: line ")


def test_duplicate_keys_are_errors_as_in_kubectl() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n"
    result = load_manifests(text, "dup.yaml")
    assert 'dup.yaml: line 5: mapping key "name" already defined at line 4' in result.errors


def test_yaml_is_read_as_kubernetes_reads_it() -> None:
    text = "a: 2024-01-02T03:04:05Z\nb: 2024-01-02\n80: x\nyes: 1\n"
    (doc,), _ = parse_documents(text)
    assert doc == {"a": "2024-01-02T03:04:05Z", "b": "2024-01-02", "80": "x", "true": 1}
    (doc,), _ = parse_documents("\ufeffa: 1\n".encode())
    assert doc == {"a": 1}


def test_timestamps_in_manifests_stay_strings() -> None:
    text = POD.format(name="ts").replace(
        "  name: ts", "  name: ts\n  creationTimestamp: 2024-01-02T03:04:05Z"
    )
    result = load_manifests(text)
    assert result.errors == []
    assert result.objects[0].metadata.creation_timestamp == "2024-01-02T03:04:05Z"


# ------------------------------------------------------------------ files


def test_manifest_files_and_directories_load_sorted_ignoring_dot_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(POD.format(name="b"))
    (tmp_path / "a.yml").write_text(POD.format(name="a"))
    (tmp_path / "c.json").write_text(json.dumps(yaml.safe_load(POD.format(name="c"))))
    (tmp_path / ".hidden.yaml").write_text(POD.format(name="hidden"))
    (tmp_path / "notes.txt").write_text(POD.format(name="txt"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(POD.format(name="d"))
    single = tmp_path / "single.manifest"
    single.write_text(POD.format(name="single"))
    result = load_manifest_files([str(tmp_path), str(single), str(tmp_path / "missing.yaml")])
    assert _names(result.objects) == ["a", "b", "c", "single"]
    assert result.errors == [f"{tmp_path / 'missing.yaml'}: No such file or directory"]


def test_file_messages_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(POD.format(name="w").replace("busybox", "busybox\n    oops: 1"))
    result = load_manifest_files([str(path)])
    assert result.warnings == [f"{path}#1 (Pod/w): spec.containers[0].oops: unknown field, ignored"]


# ------------------------------------------------------------------ printing


def test_yaml_output_puts_apiversion_kind_metadata_spec_status_first() -> None:
    (pod,) = load_manifests(POD.format(name="out")).objects
    text = dump_yaml(pod)
    top_keys = [line.split(":")[0] for line in text.splitlines() if line and line[0] != " "]
    assert top_keys == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert "containers:\n  - name: app\n" in text
    assert load_manifests(text).objects == [pod]


def test_multiline_strings_print_as_literal_blocks() -> None:
    text = POD.format(name="ml").replace(
        "image: busybox", "image: busybox\n    args:\n    - |\n      line one\n      line two"
    )
    (pod,) = load_manifests(text).objects
    out = dump_yaml(pod)
    assert "- |\n      line one\n      line two\n" in out
    assert load_manifests(out).objects == [pod]


def test_json_output_is_indented_and_round_trips() -> None:
    (pod,) = load_manifests(POD.format(name="js")).objects
    text = dump_json(pod)
    assert text.startswith('{\n    "apiVersion": "v1",\n    "kind": "Pod",\n')
    assert text.endswith("}\n")
    assert load_manifests(text).objects == [pod]


def test_several_objects_print_as_a_list() -> None:
    objects = load_manifests(POD.format(name="x") + "---\n" + POD.format(name="y")).objects
    data = yaml.safe_load(dump_yaml(objects))
    assert data["kind"] == "List" and data["apiVersion"] == "v1"
    assert [item["metadata"]["name"] for item in data["items"]] == ["x", "y"]
    assert load_manifests(dump_json(objects)).objects == objects
