"""A real node-agent over the oci runtime (runc, network namespaces) with
real NATS and Redis. Each session has its own bridge, pod CIDR, state,
runc root and cgroup parent, so it never clashes with another run; every
test ends with the runtime's cleanup, and the session asserts nothing of
it is left (namespaces, veths, mounts, processes, cgroups)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from podmodel.pod import Pod
from servicekit.store import Store

from services.node_agent.agent import AgentConfig, NodeAgent
from services.node_agent.events import EventRecorder
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.oci import hostops, nat
from services.node_agent.oci.runtime import OciConfig, OciRuntime, prerequisites
from services.node_agent.status_manager import StatusManager
from tests.conftest import stop_tasks

NODE = "oci-n1"

log = logging.getLogger(__name__)


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts, runc)"
    missing = prerequisites(OciConfig())
    return "; ".join(missing)


pytestmark = pytest.mark.root


@pytest.fixture(scope="session")
def oci_config() -> Iterator[OciConfig]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tag = f"pt{os.getpid() % 100000}"
    base = Path(tempfile.mkdtemp(prefix=f"podbus-oci-{tag}-"))
    n = os.getpid()
    config = OciConfig(
        state_dir=str(base / "state"),
        run_dir=str(base / "run"),
        seccomp_root=str(base / "seccomp"),
        image_root=str(base / "images"),
        bridge=tag,
        pod_cidr=f"10.{200 + n % 50}.{n % 250}.0/24",
        netns_prefix=tag,
        id_prefix=tag,
        cgroup_parent=f"/podbus-test-{tag}",
        host_ip="127.0.0.1",
        node_name=NODE,
    )
    yield config
    asyncio.run(OciRuntime(config).cleanup())
    leftovers = assert_nothing_left(config)
    shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, leftovers


def assert_nothing_left(config: OciConfig, *, pods_only: bool = False) -> list[str]:
    """Namespaces, veths, mounts, processes and cgroups of this config still
    there (`pods_only`: the node's own cgroup parent may stay)."""
    found: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        found += [
            f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(config.netns_prefix)
        ]
    found += [
        f"link {n}"
        for n in os.listdir("/sys/class/net")
        if n.startswith("vpb") and _on_bridge(n, config.bridge)
    ]
    found += [f"mount {m}" for m in hostops.mounts_under(config.state_dir)]
    run_mounts = hostops.mounts_under(config.run_dir)
    if pods_only:  # the node's own tmpfs may stay while the node does
        run_mounts = [m for m in run_mounts if m != str(Path(config.run_dir).resolve())]
    found += [f"mount {m}" for m in run_mounts]
    if not pods_only and nat.table_exists(config.bridge):  # the node's, like its bridge
        found.append(f"nftables table {nat.table_name(config.bridge)}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if config.runc_root.encode() in cmd or f"{config.id_prefix}-".encode() in cmd:
                found.append(f"process {pid} {cmd[:80]!r}")
    for point, _fs in hostops.cgroup_mounts():
        parent = Path(point, config.cgroup_parent.strip("/"))
        if parent.is_dir() and (not pods_only or any(p.is_dir() for p in parent.iterdir())):
            found.append(f"cgroup {point}{config.cgroup_parent}")
    return found


def _on_bridge(link: str, bridge: str) -> bool:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{link}/master")) == bridge
    except OSError:
        return False


@dataclass
class OciHarness:
    nc: NATS
    store: Store
    agent: NodeAgent
    runtime: OciRuntime
    config: OciConfig

    async def pod(self, name: str) -> Pod | None:
        return await self.store.get(Pod, "default", name)


@contextlib.asynccontextmanager
async def oci_agent(config: OciConfig, nats_url: str, redis_url: str) -> AsyncIterator[OciHarness]:
    """A node-agent over a fresh OciRuntime; leaves its containers running
    when it stops (as a crashed or restarted agent does)."""
    nc = await nats.connect(nats_url)
    store = await Store.connect(redis_url, publish=nc.publish)
    runtime = OciRuntime(config)
    status = StatusManager(store)
    events = EventRecorder(store, window=0.05)
    agent = NodeAgent(
        AgentConfig(
            node_name=NODE,
            backoff=BackoffConfig(initial=0.2, cap=1.0, reset_after=5.0),
            resync_s=5.0,
            probes="runtime",
        ),
        store=store,
        nc=nc,
        runtime=runtime,
        status=status,
        events=events,
    )
    tasks = [
        asyncio.create_task(status.run()),
        asyncio.create_task(events.run()),
        asyncio.create_task(agent.run()),
    ]
    try:
        await agent.informer.wait_synced(10)
        yield OciHarness(nc, store, agent, runtime, config)
    finally:
        await stop_tasks(tasks)
        with contextlib.suppress(Exception):
            await status.flush()
        await runtime.close()
        await store.close()
        await nc.close()


@pytest_asyncio.fixture
async def oci(oci_config: OciConfig, nats_url: str, redis_url: str) -> AsyncIterator[OciHarness]:
    try:
        async with oci_agent(oci_config, nats_url, redis_url) as h:
            yield h
    finally:
        await OciRuntime(oci_config).cleanup()
