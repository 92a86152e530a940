"""The API's fast unknown-field walk gives exactly podmodel.manifest's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from podmodel.manifest import unknown_fields as reference
from podmodel.registry import kind_type

from services.workload_controller.unknown_fields import unknown_fields

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

POD_WITH_EXTRAS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "bogus": 1,
    "metadata": {"name": "p", "labels": {"a": "b"}, "extra": {"x": 1}},
    "spec": {
        "containers": [
            {
                "name": "c",
                "image": "i",
                "ports": [{"containerPort": 80, "wat": True}],
                "resources": {"limits": {"cpu": "1"}, "oops": None},
                "livenessProbe": {"httpGet": {"port": "http", "nope": 1}},
            },
            None,
            "not-a-map",
        ],
        "volumes": [{"name": "v", "emptyDir": {"medium": "", "size": 1}}],
        "affinity": {"nodeAffinity": {"zzz": []}},
        "tolerations": [{"key": "k", "extra": 1}],
        "unknownList": [1, 2],
    },
    "status": {"phase": "Running", "weird": 1},
}


def test_same_answer_on_a_pod_full_of_unknown_fields() -> None:
    cls = kind_type("Pod")
    assert cls is not None
    got = unknown_fields(POD_WITH_EXTRAS, cls)
    assert got == reference(POD_WITH_EXTRAS, cls)
    assert "spec.containers[0].ports[0].wat" in got and "bogus" in got


def test_same_answer_on_every_example_manifest() -> None:
    checked = 0
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
                continue
            cls = kind_type(doc["kind"])
            if cls is None:
                continue
            assert unknown_fields(doc, cls) == reference(doc, cls), path
            checked += 1
    assert checked > 0


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["spec", "containers", "name", "image", "ports", "x", "template"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["Pod", "Deployment", "StatefulSet", "Job", "ReplicaSet"]),
    body=_values,
)
def test_same_answer_on_generated_garbage(kind: str, body: Any) -> None:
    cls = kind_type(kind)
    assert cls is not None
    raw = {"kind": kind, "spec": body, "metadata": body}
    assert unknown_fields(raw, cls) == reference(raw, cls)
