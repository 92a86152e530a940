"""Probe assignments from a pod's running containers, the book of the
prober's results, the kubelet's Unhealthy wording, event deduplication,
lifecycle facts and log shaping (all pure)."""

from __future__ import annotations

import pytest
from podmodel.pod import ContainerPort
from podmodel.probing import ProbeResult

from services.node_agent.logic.events import PodEventBook, field_path, pod_reference
from services.node_agent.logic.logs import LogsError, default_container, stamp_lines, tail
from services.node_agent.logic.probe_assignment import (
    ProbeResultsBook,
    pod_probe_assignments,
    unhealthy_message,
)
from services.node_agent.logic.records import SandboxRecord
from services.node_agent.logic.transitions import container_facts, seen_of
from tests.unit.node_agent.builders import (
    T0,
    UID,
    container,
    exited,
    make_pod,
    probe,
    running,
    sidecar,
    st_running,
)

SANDBOX = SandboxRecord(pod_ips=("10.0.0.5",))


def result(cid: str, kind: str, value: str, message: str = "") -> ProbeResult:
    return ProbeResult(
        pod_uid=UID,
        namespace="default",
        pod_name="web-0",
        container_name="app",
        container_id=cid,
        probe_type=kind,  # type: ignore[arg-type]
        result=value,  # type: ignore[arg-type]
        message=message,
    )


# ------------------------------------------------------------------ assignments


def test_running_app_containers_and_sidecars_get_their_probes() -> None:
    pod = make_pod(
        [
            container(
                "app",
                liveness_probe=probe(),
                readiness_probe=probe(),
                ports=[ContainerPort(name="http", container_port=80)],
            )
        ],
        init=[sidecar("proxy", startup_probe=probe()), container("setup", readiness_probe=probe())],
    )
    pod.status.container_statuses = [st_running("app", started=True)]
    records = [running("app", cid="c-app"), running("proxy", cid="c-proxy"), exited("setup", 0)]
    got = pod_probe_assignments(pod, records, SANDBOX, traceparent="00-tp")
    keys = sorted((a.container_name, a.probe_type) for a in got)
    assert keys == [("app", "liveness"), ("app", "readiness"), ("proxy", "startup")]
    app = next(a for a in got if a.container_name == "app")
    assert app.container_id == "c-app" and app.pod_ip == "10.0.0.5" and app.started
    assert app.ports[0].name == "http" and app.started_at and app.traceparent == "00-tp"
    proxy = next(a for a in got if a.container_name == "proxy")
    assert not proxy.started


def test_nothing_is_probed_when_not_running_or_when_deleting() -> None:
    pod = make_pod([container("app", liveness_probe=probe())])
    assert pod_probe_assignments(pod, [exited("app", 1)], SANDBOX) == []
    assert pod_probe_assignments(pod, [], SANDBOX) == []
    pod.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    assert pod_probe_assignments(pod, [running("app")], SANDBOX) == []


def test_results_book_keys_by_attempt_and_ignores_unknown() -> None:
    book = ProbeResultsBook()
    assert book.record(result("c1", "liveness", "failure"))
    assert not book.record(result("c1", "liveness", "failure"))  # no change
    assert not book.record(result("c1", "readiness", "unknown"))
    assert book.record(result("c1", "readiness", "success"))
    got = book.results(UID)
    assert got.liveness == {"c1": False} and got.readiness == {"c1": True} and got.startup == {}
    book.keep_only(UID, ["c2"])
    assert book.results(UID).liveness == {}
    book.forget(UID)
    assert len(book) == 0


def test_unhealthy_message_in_the_kubelets_words() -> None:
    assert (
        unhealthy_message(
            result("c", "liveness", "failure", "HTTP probe failed with statuscode: 500")
        )
        == "Liveness probe failed: HTTP probe failed with statuscode: 500"
    )
    assert (
        unhealthy_message(result("c", "readiness", "unknown", "no port"))
        == "Readiness probe errored and resulted in unknown state: no port"
    )


# ------------------------------------------------------------------ events


def test_same_event_counts_up_and_different_ones_are_new() -> None:
    book = PodEventBook("n1")
    ref = pod_reference(make_pod(), field_path("app", "app"))
    first = book.record(ref, "Normal", "Started", "Started container app", T0)
    again = book.record(ref, "Normal", "Started", "Started container app", T0 + 5)
    other = book.record(ref, "Normal", "Killing", "Stopping container app", T0 + 6)
    assert first.created and not again.created and other.created
    assert again.event.metadata.name == first.event.metadata.name
    assert again.event.count == 2 and again.event.first_timestamp == first.event.last_timestamp
    assert again.event.last_timestamp != again.event.first_timestamp
    assert first.event.involved_object.field_path == "spec.containers{app}"
    assert first.event.source.host == "n1" and first.event.metadata.namespace == "default"
    [gone] = book.expire(T0 + 3600 + 5)  # the Started record went
    assert gone.reason == "Started" and len(book) == 1
    book.forget_pod(UID)
    assert len(book) == 0


def test_event_book_stays_bounded() -> None:
    book = PodEventBook("n1", max_records=3)
    ref = pod_reference(make_pod())
    for i in range(10):
        book.record(ref, "Normal", "Started", f"m{i}", T0 + i)
    assert len(book) == 3
    evicted = book.expire(T0 + 20)  # nothing is past its TTL; the evicted come back
    assert [e.message for e in evicted] == [f"m{i}" for i in range(7)]
    assert book.expire(T0 + 21) == []


def test_field_paths() -> None:
    assert field_path("init", "setup") == "spec.initContainers{setup}"
    assert field_path("ephemeral", "dbg") == "spec.ephemeralContainers{dbg}"


# ------------------------------------------------------------------ facts


def test_container_facts_between_two_looks() -> None:
    pod = make_pod([container("app")], init=[container("setup")])
    before = seen_of([running("setup")])
    now = [exited("setup", 0), running("app")]
    facts = [(f.fact, f.kind, f.record.name) for f in container_facts(pod, before, now)]
    assert facts == [("exited", "init", "setup"), ("started", "app", "app")]
    # Nothing new on the next look.
    assert container_facts(pod, seen_of(now), now) == []


def test_an_attempt_that_ran_between_two_looks_gives_both_facts() -> None:
    pod = make_pod()
    facts = container_facts(pod, {}, [exited("app", 1)])
    assert [f.fact for f in facts] == ["started", "exited"]


# ------------------------------------------------------------------ logs


def test_tail_and_timestamps() -> None:
    data = b"a\nb\nc\n"
    assert tail(data, 2) == b"b\nc\n" and tail(data, -1) == data and tail(data, 0) == b""
    stamped = stamp_lines(b"x\ny", T0).split(b"\n")
    assert stamped[0].endswith(b"Z x") and stamped[1].endswith(b"Z y")


def test_default_container_and_errors() -> None:
    pod = make_pod([container("app"), container("side")], init=[container("setup")])
    assert default_container(pod, "") == "app"
    assert default_container(pod, "setup") == "setup"
    pod.metadata.annotations["kubectl.kubernetes.io/default-container"] = "side"
    assert default_container(pod, "") == "side"
    with pytest.raises(LogsError, match=r"choose one of \[app side setup\]"):
        default_container(pod, "nope")
