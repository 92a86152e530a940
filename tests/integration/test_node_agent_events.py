"""Kubernetes events and tracing spans written by the node-agent, on the
simulated runtime against real NATS and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from podmodel.codec import WatchEvent, decode
from podmodel.event import Event
from podmodel.pod import ExecAction, Lifecycle, LifecycleHandler, Pod
from servicekit import telemetry
from servicekit.store import Store
from servicekit.telemetry import TRACEPARENT_ANNOTATION, LocalSpanRecorder, new_root_traceparent

from services.node_agent.events import EventRecorder
from services.node_agent.logic.events import pod_reference
from tests.conftest import wait_for
from tests.integration.node_agent_harness import make_pod, running_agent


@pytest.fixture
def recorder() -> Iterator[LocalSpanRecorder]:
    rec = LocalSpanRecorder()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rec))
    previous = telemetry.use_provider(provider)
    try:
        yield rec
    finally:
        telemetry.use_provider(previous)


def traced(pod: Pod) -> Pod:
    pod.metadata.annotations[TRACEPARENT_ANNOTATION] = new_root_traceparent(pod)
    return pod


async def events_of(h, name: str) -> list[Event]:  # type: ignore[no-untyped-def]
    events, _rv = await h.store.list(Event, "default")
    return [e for e in events if e.involved_object.name == name]


async def test_lifecycle_events_and_spans_in_the_pods_trace(
    nats_url: str, redis_url: str, recorder: LocalSpanRecorder
) -> None:
    sim = {"app.exit-after": "0.2s", "app.exit-code": "1,0"}
    async with running_agent(nats_url, redis_url) as h:
        pod = traced(
            make_pod("traced", "app", init=("setup",), restart_policy="OnFailure", sim=sim)
        )
        traceparent = pod.metadata.annotations[TRACEPARENT_ANNOTATION]
        await h.store.create(pod)

        async def succeeded() -> bool:
            p = await h.pod("traced")
            return p is not None and p.status.phase == "Succeeded"

        await wait_for(succeeded, 15, message="pod Succeeded after one restart")

        def names() -> list[str]:
            return [s.name for s in recorder.trace_of(traceparent)]

        await wait_for(lambda: "node-agent.terminated" in names(), 5, message="terminated span")
        spans = {s.name: s for s in recorder.trace_of(traceparent)}
        order = names()
        for name in (
            "node-agent.sandbox",
            "node-agent.init-container",
            "node-agent.container.started",
            "node-agent.ready",
            "node-agent.restart",
            "node-agent.terminated",
        ):
            assert name in spans, order
        assert order.index("node-agent.sandbox") < order.index("node-agent.init-container")
        assert order.index("node-agent.init-container") < order.index(
            "node-agent.container.started"
        )
        init = spans["node-agent.init-container"].attributes or {}
        assert init["k8s.container.name"] == "setup" and init["podbus.container.exit_code"] == 0
        restart = spans["node-agent.restart"].attributes or {}
        assert (
            restart["k8s.container.name"] == "app" and restart["podbus.restart.reason"] == "Error"
        )
        assert (spans["node-agent.terminated"].attributes or {})["podbus.pod.phase"] == "Succeeded"
        assert all(
            s.parent is not None
            for s in recorder.trace_of(traceparent)
            if s.name.startswith("node-agent.")
        )

        async def events() -> list[Event] | None:
            found = await events_of(h, "traced")
            reasons = {(e.reason, e.involved_object.field_path) for e in found}
            want = {
                ("Pulled", "spec.initContainers{setup}"),
                ("Created", "spec.initContainers{setup}"),
                ("Started", "spec.initContainers{setup}"),
                ("Pulled", "spec.containers{app}"),
                ("Created", "spec.containers{app}"),
                ("Started", "spec.containers{app}"),
            }
            return found if want <= reasons else None

        found = await wait_for(events, 10, message="Pulled/Created/Started events")
        started = next(
            e
            for e in found
            if e.reason == "Started" and e.involved_object.field_path == "spec.containers{app}"
        )
        assert started.count == 2 and started.message == "Started container app"
        assert started.source.component == "kubelet" and started.source.host == "n1"
        pulled = next(e for e in found if e.reason == "Pulled")
        assert pulled.message == 'Container image "busybox" already present on machine'


async def test_crash_loop_writes_back_off_events(nats_url: str, redis_url: str) -> None:
    sim = {"exit-after": "0s", "exit-code": "1"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("crash", "app", sim=sim))

        async def back_off() -> list[Event] | None:
            found = [e for e in await events_of(h, "crash") if e.reason == "BackOff"]
            return found or None

        [event] = await wait_for(back_off, 10, message="BackOff event")
        pod = await h.pod("crash")
        assert pod is not None
        assert event.type == "Warning" and event.message == (
            f"Back-off restarting failed container app in pod crash_default({pod.metadata.uid})"
        )


async def test_failed_post_start_hook_kills_and_restarts_the_container(
    nats_url: str, redis_url: str
) -> None:
    sim = {"app.post-start-fails": "true"}
    async with running_agent(nats_url, redis_url) as h:
        pod = make_pod("hook", "app", sim=sim)
        pod.spec.containers[0].lifecycle = Lifecycle(
            post_start=LifecycleHandler(exec=ExecAction(command=["sh", "-c", "exit 1"]))
        )
        await h.store.create(pod)

        async def restarted() -> bool:
            p = await h.pod("hook")
            cs = p.status.container_statuses if p else []
            return bool(cs) and cs[0].restart_count >= 1

        await wait_for(restarted, 10, message="restart after the postStart hook failed")

        async def hook_events() -> list[Event] | None:
            found = await events_of(h, "hook")
            return (
                found if {"FailedPostStartHook", "Killing"} <= {e.reason for e in found} else None
            )

        found = await wait_for(hook_events, 10, message="FailedPostStartHook and Killing")
        failed = next(e for e in found if e.reason == "FailedPostStartHook")
        assert failed.type == "Warning" and failed.message == "PostStartHook failed"
        killing = next(e for e in found if e.reason == "Killing")
        assert killing.message == "FailedPostStartHook"


async def test_post_start_hook_runs_before_the_container_counts_as_running(
    nats_url: str, redis_url: str
) -> None:
    sim = {"app.post-start-duration": "0.5s"}
    async with running_agent(nats_url, redis_url) as h:
        pod = make_pod("slowhook", "app", sim=sim)
        pod.spec.containers[0].lifecycle = Lifecycle(
            post_start=LifecycleHandler(exec=ExecAction(command=["true"]))
        )
        seen: list[tuple[float, Pod]] = []

        async def on_msg(msg: Msg) -> None:
            event = decode(msg.data, WatchEvent)
            seen.append((time.monotonic(), msgspec.msgpack.decode(event.object, type=Pod)))

        await h.nc.subscribe("podbus.watch.pod.n1.default.slowhook", cb=on_msg)
        await h.nc.flush()
        await h.store.create(pod)

        def running_at() -> float | None:
            for at, p in seen:
                cs = p.status.container_statuses
                if cs and cs[0].state.running is not None:
                    return at
            return None

        shown_running = await wait_for(running_at, 10, message="running after the hook")
        creating = [
            at
            for at, p in seen
            if p.status.container_statuses
            and p.status.container_statuses[0].state.waiting is not None
        ]
        assert creating, "the container was shown waiting while its hook ran"
        assert shown_running - creating[0] >= 0.4


async def test_recorder_counts_repeats_and_deletes_expired_events(redis_url: str) -> None:
    now = [1_800_000_000.0]
    store = await Store.connect(redis_url)
    try:
        recorder = EventRecorder(store, clock=lambda: now[0])
        pod = make_pod("ev", "app")
        pod.metadata.uid = "u-ev"
        ref = pod_reference(pod, "spec.containers{app}")
        recorder.emit("n1", ref, "Normal", "Started", "Started container app")
        await recorder.flush()
        recorder.emit("n1", ref, "Normal", "Started", "Started container app")
        await recorder.flush()
        [stored] = (await store.list(Event, "default"))[0]
        assert stored.count == 2 and stored.involved_object.uid == "u-ev"
        now[0] += 3601
        await recorder.delete(recorder.book("n1").expire(now[0]))
        assert (await store.list(Event, "default"))[0] == []
    finally:
        await store.close()
