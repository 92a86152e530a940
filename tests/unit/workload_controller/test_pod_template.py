"""pod-template-hash, pod naming and GetPodFromTemplate."""

from __future__ import annotations

import random
import subprocess
import sys

from podmodel.meta import ObjectMeta

from services.workload_controller.logic.actions import slow_start_batches
from services.workload_controller.logic.pod_template import (
    SAFE_ALPHABET,
    PodFactory,
    compute_hash,
    equal_ignore_hash,
    fnv32a,
    generate_name,
    safe_encode,
)
from tests.unit.workload_controller.sample_objects import replica_set, template


def test_fnv32a_matches_reference_vectors() -> None:
    # Published FNV-1a 32-bit test vectors.
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encode_maps_digits_into_the_vowel_free_alphabet() -> None:
    # rand.SafeEncodeString maps '0'..'9' (48..57) by code point modulo 27.
    assert safe_encode("0123456789") == "".join(SAFE_ALPHABET[c % 27] for c in range(48, 58))
    assert set(compute_hash(template())) <= set(SAFE_ALPHABET)


def test_template_hash_is_stable_across_processes_and_map_order() -> None:
    a = template({"app": "web", "tier": "front"})
    b = template({"tier": "front", "app": "web"})
    assert compute_hash(a) == compute_hash(b)
    code = (
        "from tests.unit.workload_controller.sample_objects import template;"
        "from services.workload_controller.logic.pod_template import compute_hash;"
        "print(compute_hash(template({'app': 'web', 'tier': 'front'})))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == compute_hash(a)


def test_template_hash_changes_with_template_and_collision_count() -> None:
    base = template()
    assert compute_hash(base) != compute_hash(template(image="nginx:1.26"))
    assert compute_hash(base, 1) != compute_hash(base)
    assert compute_hash(base, 1) != compute_hash(base, 2)


def test_restarted_at_annotation_changes_the_hash() -> None:
    base = template()
    restarted = template()
    restarted.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = "2025-01-01T12:00:00Z"
    assert compute_hash(base) != compute_hash(restarted)


def test_equal_ignore_hash_ignores_only_the_hash_label() -> None:
    a = template()
    b = template({"app": "web", "pod-template-hash": "abc"})
    assert equal_ignore_hash(a, b)
    assert not equal_ignore_hash(a, template({"app": "other"}))


def test_generated_names_use_five_safe_characters_and_avoid_taken_ones() -> None:
    rng = random.Random(7)
    taken = {"web-bbbbb"}
    names = {generate_name("web-", rng, taken) for _ in range(200)}
    assert len(names) == 200
    for name in names:
        suffix = name.removeprefix("web-")
        assert len(suffix) == 5 and set(suffix) <= set(SAFE_ALPHABET)
    assert "web-bbbbb" not in names


def test_pod_from_template_gets_owner_reference_labels_and_generate_name() -> None:
    rs = replica_set("web-abc", uid="rs-1")
    rs.spec.template.metadata.annotations["note"] = "x"
    pod = PodFactory(rs.spec.template, rs).make_generated(random.Random(1))
    assert pod.metadata.generate_name == "web-abc-"
    assert pod.metadata.name.startswith("web-abc-")
    assert pod.metadata.namespace == "default"
    assert pod.metadata.labels == {"app": "web"}
    assert pod.metadata.annotations == {"note": "x"}
    (ref,) = pod.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.api_version) == (
        "ReplicaSet",
        "web-abc",
        "rs-1",
        "apps/v1",
    )
    assert ref.controller is True and ref.block_owner_deletion is True


def test_pods_from_one_factory_do_not_share_state() -> None:
    rs = replica_set()
    factory = PodFactory(rs.spec.template, rs)
    a, b = factory.make("a"), factory.make("b")
    a.spec.containers[0].image = "changed"
    a.metadata.labels["x"] = "y"
    assert b.spec.containers[0].image == "nginx:1.25"
    assert "x" not in b.metadata.labels
    assert rs.spec.template.spec.containers[0].image == "nginx:1.25"


def test_slow_start_batches_double_from_the_initial_size() -> None:
    items = list(range(20))
    assert [len(b) for b in slow_start_batches(items, 1)] == [1, 2, 4, 8, 5]
    assert [len(b) for b in slow_start_batches(items, 5)] == [5, 10, 5]
    assert [x for b in slow_start_batches(items, 3) for x in b] == items
    assert list(slow_start_batches([], 1)) == []


def test_object_meta_default_is_not_shared_between_pods() -> None:
    # Guards the factory's assumption that fresh ObjectMeta dicts are independent.
    assert ObjectMeta().labels is not ObjectMeta().labels
