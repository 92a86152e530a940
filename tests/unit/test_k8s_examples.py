"""The real Kubernetes manifests in /work/shared/k8s-examples load through
the manifest loader unchanged: no errors, kinds podbus does not run skipped
with a message, and exactly the expected warnings, so that a field silently
dropped (or newly unsupported) fails here."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import yaml
from podmodel.manifest import load_manifests

from tests.k8s_examples import EXAMPLES, SHARED_EXAMPLES

# file -> (kind/name of every object loaded, every warning after the file prefix)
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "deployment.yaml": (["Deployment/nginx-deployment"], []),
    "exec-liveness.yaml": (["Pod/liveness-exec"], []),
    "indexed-job.yaml": (["Job/indexed-job"], []),
    "init-containers.yaml": (["Pod/init-demo"], []),
    "job-pi.yaml": (["Job/pi"], []),
    "job-sidecar.yaml": (["Job/myjob"], []),
    "shared-volume.yaml": (["Pod/shared-volume-example"], []),
    "web-statefulset.yaml": (
        ["StatefulSet/web"],
        ["#1: skipped Service/nginx: podbus does not run kind Service"],
    ),
}


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason=f"no shared folder at {SHARED_EXAMPLES}")
def test_the_copy_matches_the_shared_examples() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED_EXAMPLES.iterdir() if p.is_file()}
    copy = {p.name: p.read_bytes() for p in EXAMPLES.iterdir() if p.is_file()}
    assert copy == shared, "tests/data/k8s-examples is out of date: copy the shared folder again"


def test_every_example_is_expected() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == set(EXPECTED)


def _leaf_paths(value: Any, path: str = "") -> set[str]:
    """Every path that ends in a scalar, an empty map or an empty list."""
    if isinstance(value, dict) and value:
        out: set[str] = set()
        for k, v in value.items():
            out |= _leaf_paths(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(value, list) and value:
        out = set()
        for i, v in enumerate(value):
            out |= _leaf_paths(v, f"{path}[{i}]")
        return out
    return {path}


def test_every_example_has_an_expectation() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_loads_with_exactly_the_expected_warnings(name: str) -> None:
    path = EXAMPLES / name
    result = load_manifests(path.read_bytes(), source=name)
    objects, warnings = EXPECTED[name]
    assert result.errors == []
    assert [f"{o.kind}/{o.metadata.name}" for o in result.objects] == objects
    assert result.warnings == [f"{name}{w}" for w in warnings]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_field_of_an_example_survives_loading(name: str) -> None:
    """Each field the manifest sets is present on the loaded object (values
    may be defaulted or canonicalised, never dropped)."""
    text = (EXAMPLES / name).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d and d.get("kind") != "Service"]
    result = load_manifests(text, source=name)
    assert len(docs) == len(result.objects)
    for raw, obj in zip(docs, result.objects, strict=True):
        loaded = _leaf_paths(msgspec.to_builtins(obj))
        written = _leaf_paths(raw)
        missing = {
            p for p in written if p not in loaded and not any(q.startswith(p) for q in loaded)
        }
        assert missing == set(), f"{name}: fields lost while loading"


def test_sidecar_and_volume_details_reach_the_typed_objects() -> None:
    (job,) = load_manifests((EXAMPLES / "job-sidecar.yaml").read_bytes()).objects
    sidecar = job.spec.template.spec.init_containers[0]  # type: ignore[attr-defined]
    assert sidecar.restart_policy == "Always"
    (pod,) = load_manifests((EXAMPLES / "shared-volume.yaml").read_bytes()).objects
    assert pod.spec.volumes[0].empty_dir.size_limit == "10Mi"  # type: ignore[attr-defined]
    (sts,) = load_manifests((EXAMPLES / "web-statefulset.yaml").read_bytes()).objects
    assert sts.spec.service_name == "nginx"  # type: ignore[attr-defined]
    claim = sts.spec.volume_claim_templates[0]  # type: ignore[attr-defined]
    assert claim.spec.resources.requests["storage"] == "1Gi"
