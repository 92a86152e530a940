"""Rollout status messages, undo, wait conditions and label edits."""

from __future__ import annotations

from typing import Any

import pytest

from clients.podctl.rollout_logic import (
    EditError,
    RolloutError,
    apply_edits,
    condition_met,
    deployment_rollout,
    history,
    jsonpath,
    parse_edits,
    parse_wait_for,
    statefulset_rollout,
    undo_template,
)


def deploy(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": observed, **status},
    }


def test_deployment_rollout_messages_follow_kubectl() -> None:
    assert deployment_rollout(deploy(3, 2)).message == (
        "Waiting for deployment spec update to be observed..."
    )
    s = deployment_rollout(deploy(updatedReplicas=1, replicas=3))
    assert s.message == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'
    )
    s = deployment_rollout(deploy(updatedReplicas=3, replicas=4))
    assert "1 old replicas are pending termination" in s.message
    s = deployment_rollout(deploy(updatedReplicas=3, replicas=3, availableReplicas=2))
    assert "2 of 3 updated replicas are available" in s.message and not s.done
    s = deployment_rollout(deploy(updatedReplicas=3, replicas=3, availableReplicas=3))
    assert s.done and s.message == 'deployment "web" successfully rolled out'


def test_deployment_past_its_deadline_is_an_error() -> None:
    d = deploy(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(RolloutError, match="exceeded its progress deadline"):
        deployment_rollout(d)


def test_statefulset_rollout_messages() -> None:
    s = {
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "readyReplicas": 1},
    }
    assert statefulset_rollout(s).message == "Waiting for 1 pods to be ready..."
    s["status"] = {
        "observedGeneration": 1,
        "readyReplicas": 2,
        "updatedReplicas": 2,
        "currentRevision": "db-1",
        "updateRevision": "db-1",
        "currentReplicas": 2,
    }
    state = statefulset_rollout(s)
    assert (
        state.done
        and state.message == "statefulset rolling update complete 2 pods at revision db-1..."
    )


def rs(rev: int, image: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{rev}",
            "annotations": {"deployment.kubernetes.io/revision": str(rev)},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": f"h{rev}"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            }
        },
    }


def test_undo_copies_the_previous_revision_without_its_hash() -> None:
    rss = [rs(1, "busybox:1"), rs(2, "busybox:2"), rs(3, "busybox:3")]
    t = undo_template({}, rss)
    assert t["spec"]["containers"][0]["image"] == "busybox:2"
    assert t["metadata"]["labels"] == {"app": "web"}
    assert undo_template({}, rss, 1)["spec"]["containers"][0]["image"] == "busybox:1"
    with pytest.raises(RolloutError, match="revision 9"):
        undo_template({}, rss, 9)
    with pytest.raises(RolloutError, match="no rollout history"):
        undo_template({}, [rs(1, "x")])
    assert history(rss) == [(1, "<none>"), (2, "<none>"), (3, "<none>")]


def test_wait_conditions_and_jsonpath() -> None:
    pod = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert condition_met(pod, parse_wait_for("condition=Ready"))
    assert condition_met(pod, parse_wait_for("condition=ready"))
    assert not condition_met(pod, parse_wait_for("condition=Ready=false"))
    assert condition_met(pod, parse_wait_for("jsonpath={.status.phase}=Running"))
    assert not condition_met(pod, parse_wait_for("jsonpath={.status.phase}=Failed"))
    assert parse_wait_for("delete").kind == "delete"
    with pytest.raises(ValueError, match="unrecognized"):
        parse_wait_for("ready")
    assert jsonpath({"items": [{"a": 1}, {"a": 2}]}, "{.items[*].a}") == [1, 2]
    assert jsonpath({"items": [{"a": 1}, {"a": 2}]}, "{.items[-1].a}") == [2]


def test_label_edits_need_overwrite_to_change_a_value() -> None:
    sets, removes = parse_edits(["env=prod", "old-"])
    assert sets == {"env": "prod"} and removes == ["old"]
    assert apply_edits({"old": "x"}, sets, removes, overwrite=False) == {"env": "prod"}
    with pytest.raises(
        EditError, match="'env' already has a value \\(dev\\), and --overwrite is false"
    ):
        apply_edits({"env": "dev"}, sets, [], overwrite=False)
    assert apply_edits({"env": "dev"}, sets, [], overwrite=True) == {"env": "prod"}
    with pytest.raises(EditError):
        parse_edits(["nonsense"])


def test_jsonpath_templates_keep_literal_text() -> None:
    from clients.podctl.rollout_logic import jsonpath_template

    obj = {"metadata": {"name": "a", "generation": 2}, "status": {"ready": True}}
    assert jsonpath_template(obj, "{.metadata.name} {.metadata.generation}\\n") == "a 2\n"
    assert jsonpath_template(obj, "{.status.ready}") == "true"
    assert jsonpath_template(obj, '{.metadata.name}{"\\n"}') == "a\n"
