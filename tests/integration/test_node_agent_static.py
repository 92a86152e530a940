"""Static pods from a manifest directory and their mirror pods, on the
simulated runtime against real NATS and Redis (K8S_SEMANTICS.md section 7)."""

from __future__ import annotations

from pathlib import Path

from podmodel.node import Node
from podmodel.pod import Pod

from services.node_agent.logic.static_pods import CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE
from services.node_agent.node import NodeConfig, register_nodes
from tests.conftest import wait_for
from tests.integration.node_agent_harness import running_agent

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web, tier: {tier}}}
spec:
  containers:
  - name: app
    image: {image}
"""


def write(directory: Path, image: str = "busybox", tier: str = "front") -> None:
    (directory / "web.yaml").write_text(MANIFEST.format(image=image, tier=tier))


async def mirror_running(h, image: str | None = None) -> Pod | None:  # type: ignore[no-untyped-def]
    pod = await h.pod("web-n1")
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return None
    if pod.status.phase != "Running" or not pod.status.container_statuses:
        return None
    if image is not None and pod.status.container_statuses[0].image != image:
        return None
    return pod if pod.status.container_statuses[0].state.running is not None else None


async def test_static_pod_runs_with_a_mirror_that_the_api_cannot_remove(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    write(tmp_path)
    (tmp_path / ".hidden.yaml").write_text("not: a pod")
    async with running_agent(
        nats_url, redis_url, static_pod_dir=str(tmp_path), static_rescan_s=0.5
    ) as h:
        [node] = await register_nodes(h.store, [NodeConfig(name="n1")])
        mirror = await wait_for(lambda: mirror_running(h), 15, message="mirror pod running")
        meta = mirror.metadata
        assert meta.namespace == "default" and mirror.spec.node_name == "n1"
        assert meta.labels == {"app": "web", "tier": "front"}
        assert meta.annotations[CONFIG_SOURCE] == "file"
        static_uid = meta.annotations[CONFIG_HASH]
        assert meta.annotations[CONFIG_MIRROR] == static_uid and meta.uid != static_uid
        owner = meta.owner_references[0]
        assert owner.kind == "Node" and owner.name == "n1" and owner.uid == node.metadata.uid
        assert any(
            t.effect == "NoExecute" and t.operator == "Exists" for t in mirror.spec.tolerations
        )
        container_id = mirror.status.container_statuses[0].container_id
        assert len(h.agent.workers) == 1  # the mirror is not run as a pod of its own

        # Deleting the mirror through the API: it comes back, the pod keeps running.
        await h.store.delete(Pod, "default", "web-n1")

        async def recreated() -> Pod | None:
            pod = await mirror_running(h)
            return pod if pod is not None and pod.metadata.uid != meta.uid else None

        again = await wait_for(recreated, 15, message="mirror recreated")
        assert again.status.container_statuses[0].container_id == container_id
        assert again.status.container_statuses[0].restart_count == 0

        # Editing the file replaces the pod: a new uid, a new container.
        write(tmp_path, image="busybox:edited", tier="back")
        edited = await wait_for(
            lambda: mirror_running(h, "busybox:edited"), 15, message="edited pod running"
        )
        assert edited.metadata.annotations[CONFIG_HASH] != static_uid
        assert edited.metadata.labels["tier"] == "back"
        assert edited.status.container_statuses[0].container_id != container_id

        # Removing the file stops the pod and removes the mirror.
        (tmp_path / "web.yaml").unlink()

        async def gone() -> bool:
            return await h.pod("web-n1") is None and not h.agent.workers

        await wait_for(gone, 15, message="static pod and mirror gone")
        nodes, _ = await h.store.list(Node)
        assert [n.metadata.name for n in nodes] == ["n1"]


async def test_bad_manifest_is_skipped_and_picked_up_once_fixed(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "web.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {}\n"
    )
    async with running_agent(
        nats_url, redis_url, static_pod_dir=str(tmp_path), static_rescan_s=0.5
    ) as h:
        await register_nodes(h.store, [NodeConfig(name="n1")])
        await wait_for(lambda: h.agent.static is not None and h.agent.static.scans >= 1, 10)
        assert not h.agent.workers
        write(tmp_path)
        await wait_for(lambda: mirror_running(h), 15, message="fixed manifest runs")


async def test_restarted_agent_adopts_its_static_pod(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    write(tmp_path)
    async with running_agent(
        nats_url, redis_url, static_pod_dir=str(tmp_path), static_rescan_s=0.5
    ) as h:
        await register_nodes(h.store, [NodeConfig(name="n1")])
        before = await wait_for(lambda: mirror_running(h), 15, message="mirror pod running")
    async with running_agent(
        nats_url, redis_url, static_pod_dir=str(tmp_path), static_rescan_s=0.5
    ) as h2:
        await wait_for(lambda: h2.agent.workers, 10, message="static pod worker again")
        worker = next(iter(h2.agent.workers.values()))[0]
        await wait_for(lambda: worker.mirror is not None, 10, message="mirror linked")
        after = await mirror_running(h2)
        assert after is not None and after.metadata.uid == before.metadata.uid
        cs = after.status.container_statuses[0]
        assert cs.container_id == before.status.container_statuses[0].container_id
        assert cs.restart_count == 0
        obs = await h2.runtime.observe(worker.pod)
        assert [r.container_id for r in obs.records] == [cs.container_id]  # adopted, not started
