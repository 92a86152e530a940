"""Harness for the workload-controller's integration tests (real NATS and
Redis): the controllers of one leadership term running in-process, objects
created the way the API creates them, and a test playing the node (binding
pods and writing their status through the store)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podmodel.codec import ErrorReply
from podmodel.meta import KubeObject
from podmodel.pod import Condition, Pod
from servicekit.bus import Bus
from servicekit.store import Store, StoreError

from services.workload_controller.api import prepare_object
from services.workload_controller.controllers import ControllerConfig, Controllers
from services.workload_controller.intake import Intake
from tests.conftest import stop_tasks, wait_for

FAST = ControllerConfig(
    node_grace_period_s=1.0,
    node_monitor_period_s=0.2,
    pod_eviction_toleration_s=1.0,
    job_backoff_base_s=0.05,
    job_backoff_max_s=0.2,
    burst_replicas=500,
    slow_start_initial_batch=10,
    resync_s=5.0,
    gc_period_s=2.0,
)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepared(raw: dict[str, Any]) -> KubeObject:
    """An object defaulted and validated as the API does it."""
    result = prepare_object(raw)
    assert not isinstance(result, ErrorReply), result
    return result[0]


@dataclass
class Harness:
    store: Store
    controllers: Controllers
    bus: Bus

    async def apply(self, raw: dict[str, Any]) -> KubeObject:
        """Apply as a client does, through the API intake's own path
        (unconditional update: no resourceVersion in the manifest)."""
        reply = await Intake(self.store).apply_raw(raw)
        obj = prepared(raw)
        stored = await self.store.get(obj.KIND, obj.metadata.namespace, obj.metadata.name)
        assert stored is not None and reply.object
        return stored

    async def pods(self, prefix: str = "", *, active: bool = True) -> list[Pod]:
        pods, _ = await self.store.list(Pod, "default")
        out = [p for p in pods if p.metadata.name.startswith(prefix)]
        if active:
            out = [
                p
                for p in out
                if p.metadata.deletion_timestamp is None
                and p.status.phase not in ("Succeeded", "Failed")
            ]
        return out

    async def run_pods(
        self,
        pods: Iterable[Pod],
        *,
        node: str = "node-a",
        ready: bool = True,
        phase: str = "Running",
        exit_code: int | None = None,
    ) -> None:
        """Play the node: bind the pods (if unbound) and write their status."""
        pods = list(pods)
        unbound = [p for p in pods if not p.spec.node_name]
        if unbound:
            results = await self.store.bind_many(
                [(p.metadata.namespace, p.metadata.name, node, None) for p in unbound]
            )
            bound = {r.metadata.name: r for r in results if not isinstance(r, StoreError)}
            pods = [bound.get(p.metadata.name, p) for p in pods]
        now = stamp()
        for p in pods:
            p.status.phase = phase
            p.status.start_time = p.status.start_time or now
            p.status.conditions = [
                Condition(type="PodScheduled", status="True", last_transition_time=now),
                Condition(
                    type="Ready", status="True" if ready else "False", last_transition_time=now
                ),
            ]
            if exit_code is not None:
                from podmodel.pod import (
                    ContainerState,
                    ContainerStateTerminated,
                    ContainerStatus,
                )

                p.status.container_statuses = [
                    ContainerStatus(
                        name=c.name,
                        image=c.image,
                        state=ContainerState(
                            terminated=ContainerStateTerminated(
                                exit_code=exit_code,
                                reason="Completed" if exit_code == 0 else "Error",
                                finished_at=now,
                            )
                        ),
                    )
                    for c in p.spec.containers
                ]
        await self.store.update_status_many(pods, [""] * len(pods))

    async def finish_deletions(self) -> int:
        """Play the node for deleted pods: remove every pod marked deleted."""
        pods, _ = await self.store.list(Pod, "default")
        gone = 0
        for p in pods:
            if p.metadata.deletion_timestamp is not None:
                with contextlib.suppress(StoreError):
                    await self.store.remove("Pod", "default", p.metadata.name)
                    gone += 1
        return gone


@contextlib.asynccontextmanager
async def controllers_running(
    nats_url: str,
    redis_url: str,
    config: ControllerConfig = FAST,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[Harness]:
    bus = await Bus.connect(nats_url, "wc-controllers-test")
    store = await Store.connect(redis_url, publish=bus.publish_raw)
    controllers = Controllers(
        store, bus.nc, config, instance="test", **({"clock": clock} if clock else {})
    )
    task = asyncio.create_task(controllers.run())
    try:
        async with asyncio.timeout(10):
            await controllers.ready.wait()
        yield Harness(store, controllers, bus)
    finally:
        await stop_tasks([task])
        await store.close()
        await bus.close()


def deployment(name: str, replicas: int, image: str = "app:1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "app:1"}]},
            },
        },
    }


async def test_controllers_start_and_sync_empty_store(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await wait_for(lambda: h.controllers.syncs > 0, message="first syncs")
        assert h.controllers.pods.synced and h.controllers.nodes.synced


class FakeKubelet:
    """Plays every node for pods of one name prefix: binds and readies new
    pods, removes pods marked for deletion, and calls `observe` after each
    pass so a test can check invariants on the way."""

    def __init__(
        self,
        h: Harness,
        prefix: str = "",
        *,
        ready: bool = True,
        observe: Any = None,
        period_s: float = 0.03,
    ) -> None:
        self.h = h
        self.prefix = prefix
        self.ready = ready
        self.observe = observe
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> None:
        pods, _ = await self.h.store.list(Pod, "default")
        mine = [p for p in pods if p.metadata.name.startswith(self.prefix)]
        for p in mine:
            if p.metadata.deletion_timestamp is not None:
                with contextlib.suppress(StoreError):
                    await self.h.store.remove("Pod", "default", p.metadata.name)
        fresh = [
            p for p in mine if p.metadata.deletion_timestamp is None and p.status.phase != "Running"
        ]
        if fresh:
            await self.h.run_pods(fresh, ready=self.ready)
        if self.observe is not None:
            result = self.observe()
            if asyncio.iscoroutine(result):
                await result

    async def _loop(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.period_s)

    async def __aenter__(self) -> FakeKubelet:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
