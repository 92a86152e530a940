"""The assignment/result protocol types and the assignment diff."""

from __future__ import annotations

import msgspec
from podmodel.node_api import ExecRequest
from podmodel.pod import ContainerPort, Probe, TCPSocketAction
from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeReport, ProbeResult

from services.prober.logic.assignment import diff_assignment, epoch_seconds


def assignment(
    uid: str = "u1", probe_type: str = "readiness", port: int = 80, **kw: object
) -> ProbeAssignment:
    return ProbeAssignment(
        pod_uid=uid,
        namespace="default",
        pod_name="web",
        container_name="app",
        probe_type=probe_type,  # type: ignore[arg-type]
        probe=Probe(tcp_socket=TCPSocketAction(port=port)),
        **kw,  # type: ignore[arg-type]
    )


def test_diff_adds_removes_keeps_and_replaces() -> None:
    running = {a.key: a for a in [assignment("keep"), assignment("gone"), assignment("change")]}
    desired = ProbeAssignmentSet(
        node="n1",
        generation=2,
        probes=[
            assignment("keep", container_id="new-id"),
            assignment("change", port=81),
            assignment("new"),
        ],
    )
    diff = diff_assignment(running, desired)
    assert [a.pod_uid for a in diff.added] == ["new"]
    assert diff.removed == [("gone", "app", "readiness")]
    assert [a.container_id for a in diff.kept] == ["new-id"]
    assert [a.probe.tcp_socket.port for a in diff.replaced if a.probe.tcp_socket] == [81]


def test_probe_types_of_one_container_are_separate_keys() -> None:
    running = {assignment(probe_type="liveness").key: assignment(probe_type="liveness")}
    desired = ProbeAssignmentSet(node="n1", probes=[assignment(probe_type="readiness")])
    diff = diff_assignment(running, desired)
    assert len(diff.added) == 1 and len(diff.removed) == 1


def test_wire_names_are_camel_case_with_kubernetes_spelling() -> None:
    a = assignment(
        pod_ip="10.88.0.5",
        container_id="cid",
        ports=[ContainerPort(name="http", container_port=8080)],
    )
    raw = msgspec.json.decode(msgspec.json.encode(a))
    assert raw["podIP"] == "10.88.0.5"
    assert raw["containerID"] == "cid"
    assert raw["probeType"] == "readiness"
    assert raw["probe"]["tcpSocket"]["port"] == 80
    assert msgspec.json.decode(msgspec.json.encode(a), type=ProbeAssignment) == a


def test_report_round_trips_through_msgpack() -> None:
    report = ProbeReport(
        node="n1",
        generation=3,
        results=[
            ProbeResult(
                pod_uid="u1",
                namespace="default",
                pod_name="web",
                container_name="app",
                container_id="cid",
                probe_type="liveness",
                result="failure",
                message="HTTP probe failed with statuscode: 500",
                consecutive=3,
            )
        ],
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(report), type=ProbeReport) == report
    request = ExecRequest(
        namespace="default", pod="web", container="app", command=["cat", "/tmp/healthy"]
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(request), type=ExecRequest) == request


def test_epoch_seconds_reads_rfc3339() -> None:
    assert epoch_seconds("1970-01-01T00:01:00Z") == 60.0
    assert epoch_seconds("1970-01-01T01:00:00+01:00") == 0.0
    assert epoch_seconds("1970-01-01T00:00:01.5Z") == 1.5
    assert epoch_seconds(None) is None
    assert epoch_seconds("not a time") is None
