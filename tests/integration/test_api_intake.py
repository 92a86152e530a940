"""The workload-controller intake answers apply/get/list/delete over real NATS and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from podmodel import subjects
from servicekit.bus import Bus
from servicekit.runner import ServiceContext
from servicekit.store import Store

from services.workload_controller.intake import serve_intake

CLIENT_SCRIPT = str(Path(__file__).resolve().parents[2] / "clients" / "examples" / "apply_pod.py")
CLIENT_SCRIPT_TEXT = Path(CLIENT_SCRIPT).read_text()

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
}


@pytest.fixture
async def service(nats_url: str, redis_url: str) -> AsyncIterator[None]:
    async with service_running(nats_url, redis_url):
        yield


@contextlib.asynccontextmanager
async def service_running(nats_url: str, redis_url: str) -> AsyncIterator[None]:
    bus = await Bus.connect(nats_url, "wc-test")
    store = await Store.connect(redis_url)
    async with asyncio.TaskGroup() as group:
        ctx = ServiceContext("workload-controller", "t", bus, group, None)
        await serve_intake(ctx, store)
        yield
        ctx.stopping.set()
    await store.close()
    await bus.close()


async def _request(nats_url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=5)
    finally:
        await nc.close()
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def test_apply_creates_pod_then_get_and_list_find_it(service: None, nats_url: str) -> None:
    reply = await _request(nats_url, subjects.API_APPLY, {"object": POD})
    assert reply["created"] is True and reply["object"]["metadata"]["uid"]
    got = await _request(
        nats_url, subjects.API_GET, {"kind": "Pod", "namespace": "default", "name": "web"}
    )
    assert got["spec"]["containers"][0]["image"] == "nginx:1"
    listed = await _request(
        nats_url, subjects.API_LIST, {"kind": "Pod", "labelSelector": "app=web"}
    )
    assert [o["metadata"]["name"] for o in listed["items"]] == ["web"]
    none = await _request(nats_url, subjects.API_LIST, {"kind": "Pod", "labelSelector": "app=db"})
    assert none.get("items", []) == []


async def test_invalid_pod_reply_lists_every_field(service: None, nats_url: str) -> None:
    bad = {
        "kind": "Pod",
        "metadata": {"name": "Bad_Name"},
        "spec": {"containers": [{"name": "app"}]},
    }
    reply = await _request(nats_url, subjects.API_APPLY, {"object": bad})
    assert reply["code"] == 422
    fields = {d["field"] for d in reply["details"]}
    assert {"metadata.name", "spec.containers[0].image"} <= fields


async def test_pod_spec_change_other_than_image_is_forbidden(service: None, nats_url: str) -> None:
    await _request(nats_url, subjects.API_APPLY, {"object": POD})
    changed = json.loads(json.dumps(POD))
    changed["spec"]["containers"][0]["command"] = ["sh"]
    reply = await _request(nats_url, subjects.API_APPLY, {"object": changed})
    assert reply["code"] == 422 and "pod updates may not change" in reply["details"][0]["message"]


async def test_unbound_pod_delete_removes_it_at_once(service: None, nats_url: str) -> None:
    await _request(nats_url, subjects.API_APPLY, {"object": POD})
    await _request(
        nats_url, subjects.API_DELETE, {"kind": "Pod", "namespace": "default", "name": "web"}
    )
    got = await _request(
        nats_url, subjects.API_GET, {"kind": "Pod", "namespace": "default", "name": "web"}
    )
    assert got["code"] == 404


async def test_garbage_request_gets_error_and_service_keeps_answering(
    service: None, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(subjects.API_APPLY, b"\xff\x00garbage", timeout=5)
        assert b"invalid request" in msg.data
    finally:
        await nc.close()
    reply = await _request(nats_url, subjects.API_APPLY, {"object": POD})
    assert reply["created"] is True


async def test_module_entry_point_serves_and_stops_on_sigterm(
    nats_url: str, redis_url: str
) -> None:
    import signal
    import sys

    args = ["--nats-url", nats_url, "--redis-url", redis_url, "--instance", "it"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.workload_controller", *args
    )
    try:
        nc = await nats.connect(nats_url)
        try:
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                try:
                    health = await nc.request(
                        subjects.health("workload-controller", "it"), b"", timeout=0.5
                    )
                    break
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    assert asyncio.get_running_loop().time() < deadline, (
                        "service never answered health"
                    )
                    await asyncio.sleep(0.1)
            assert b"ok" in health.data
            # health answers before main() has subscribed the API: wait for it
            while True:
                try:
                    msg = await nc.request(
                        subjects.API_APPLY, json.dumps({"object": POD}).encode(), timeout=2
                    )
                    break
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    assert asyncio.get_running_loop().time() < deadline, "apply never answered"
                    await asyncio.sleep(0.1)
        finally:
            await nc.close()
        reply = json.loads(msg.data)
        assert reply["created"] is True
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_garbage = st.binary(max_size=64) | st.dictionaries(
    st.sampled_from(["object", "kind", "name", "namespace", "labelSelector", "x"]),
    _json_values,
    max_size=4,
).map(lambda d: json.dumps(d).encode())


async def test_generated_garbage_never_stops_the_service(service: None, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    api = [subjects.API_APPLY, subjects.API_GET, subjects.API_LIST, subjects.API_DELETE]
    try:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payload=_garbage, subject=st.sampled_from(api))
        def sample(payload: bytes, subject: str) -> None:
            samples.append((subject, payload))

        samples: list[tuple[str, bytes]] = []
        sample()
        for subject, payload in samples:
            msg = await nc.request(subject, payload, timeout=5)
            assert msg.data, f"no reply to {payload!r} on {subject}"
    finally:
        await nc.close()
    reply = await _request(nats_url, subjects.API_APPLY, {"object": POD})
    assert reply["created"] is True


async def test_desired_published_before_start_is_applied_and_rejections_published(
    nats_url: str, redis_url: str
) -> None:
    publisher = await Bus.connect(nats_url, "publisher")
    rejections: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_rejected(msg: Any) -> None:
        await rejections.put(msg.data)

    await publisher.nc.subscribe("podbus.rejected.>", cb=on_rejected)
    await publisher.ensure_streams()
    await publisher.js_publish(subjects.desired("Pod", "default", "web"), POD, json=True)
    bad = {"kind": "Pod", "metadata": {"name": "bad"}, "spec": {"containers": [{"name": "app"}]}}
    await publisher.js_publish(subjects.desired("Pod", "default", "bad"), bad, json=True)
    async with service_running(nats_url, redis_url):
        got = await asyncio.wait_for(rejections.get(), timeout=10)
        assert b"spec.containers[0].image" in got
        reply = await _request(
            nats_url, subjects.API_GET, {"kind": "Pod", "namespace": "default", "name": "web"}
        )
        assert reply["metadata"]["name"] == "web"
    await publisher.close()


async def test_plain_nats_client_script_applies_pod_and_deployment(
    service: None, nats_url: str
) -> None:
    import sys

    imports = [
        line for line in CLIENT_SCRIPT_TEXT.splitlines() if line.startswith(("import ", "from "))
    ]
    assert not [
        line
        for line in imports
        if any(p in line for p in ("podmodel", "servicekit", "services", "clients"))
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        CLIENT_SCRIPT,
        nats_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["Pod/hello created", "Deployment/web created"]


async def test_apply_accepts_msgpack_and_replies_in_msgpack(service: None, nats_url: str) -> None:
    import msgspec

    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(
            subjects.API_APPLY, msgspec.msgpack.encode({"object": POD}), timeout=5
        )
    finally:
        await nc.close()
    reply = msgspec.msgpack.decode(msg.data)
    assert reply["created"] is True and reply["object"]["metadata"]["name"] == "web"


async def test_ephemeral_container_added_but_forbidden_fields_rejected(
    service: None, nats_url: str
) -> None:
    await _request(nats_url, subjects.API_APPLY, {"object": POD})
    ok = {"namespace": "default", "name": "web", "container": {"name": "dbg", "image": "busybox"}}
    reply = await _request(nats_url, subjects.API_EPHEMERAL, ok)
    assert [c["name"] for c in reply["spec"]["ephemeralContainers"]] == ["dbg"]
    bad = {
        "namespace": "default",
        "name": "web",
        "container": {"name": "dbg2", "image": "busybox", "ports": [{"containerPort": 80}]},
    }
    reply = await _request(nats_url, subjects.API_EPHEMERAL, bad)
    assert reply["code"] == 422
    assert [d["field"] for d in reply["details"]] == ["spec.ephemeralContainers[1].ports"]


async def test_update_bumps_generation_only_on_spec_change(service: None, nats_url: str) -> None:
    first = await _request(nats_url, subjects.API_APPLY, {"object": POD})
    relabelled = json.loads(json.dumps(POD))
    relabelled["metadata"]["labels"]["tier"] = "front"
    second = await _request(nats_url, subjects.API_APPLY, {"object": relabelled})
    assert "error" not in second, second
    assert not second.get("created")
    assert second["object"]["metadata"].get("generation") == first["object"]["metadata"].get(
        "generation"
    )
    assert second["object"]["metadata"]["labels"]["tier"] == "front"
    reimaged = json.loads(json.dumps(relabelled))
    reimaged["spec"]["containers"][0]["image"] = "nginx:2"
    third = await _request(nats_url, subjects.API_APPLY, {"object": reimaged})
    assert (
        third["object"]["metadata"]["generation"]
        == first["object"]["metadata"].get("generation", 0) + 1
    )


async def test_delete_with_unknown_propagation_policy_names_the_field(
    service: None, nats_url: str
) -> None:
    await _request(nats_url, subjects.API_APPLY, {"object": POD})
    reply = await _request(
        nats_url,
        subjects.API_DELETE,
        {"kind": "Pod", "namespace": "default", "name": "web", "propagationPolicy": "Sometimes"},
    )
    assert reply["code"] == 422 and "propagationPolicy" in reply["error"]


async def test_rollback_of_a_missing_deployment_is_not_found(service: None, nats_url: str) -> None:
    reply = await _request(nats_url, subjects.API_ROLLBACK, {"name": "nope"})
    assert reply["code"] == 404 and "nope" in reply["error"]


async def test_config_maps_and_secrets_apply_as_the_api_server_stores_them(
    service: None, nats_url: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "s3cr3t"},
        "data": {"user": "YWRtaW4="},
    }
    reply = await _request(nats_url, subjects.API_APPLY, {"object": secret})
    stored = reply["object"]
    assert stored["type"] == "Opaque" and "stringData" not in stored
    assert stored["data"] == {"user": "YWRtaW4=", "password": "czNjcjN0"}
    frozen = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "frozen"},
        "data": {"a": "1"},
        "immutable": True,
    }
    assert (await _request(nats_url, subjects.API_APPLY, {"object": frozen}))["created"]
    changed = {**frozen, "data": {"a": "2"}}
    reply = await _request(nats_url, subjects.API_APPLY, {"object": changed})
    assert reply["code"] == 422 and reply["error"] == "ConfigMap 'frozen' is invalid"
    assert reply["details"] == [
        {"field": "data", "message": "Forbidden: field is immutable when `immutable` is set"}
    ]
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
           "data": {"no/slash": "x"}}  # fmt: skip
    reply = await _request(nats_url, subjects.API_APPLY, {"object": bad})
    assert [d["field"] for d in reply["details"]] == ["data[no/slash]"]
    listed = await _request(nats_url, subjects.API_LIST, {"kind": "cm"})
    assert [o["metadata"]["name"] for o in listed["items"]] == ["frozen"]
