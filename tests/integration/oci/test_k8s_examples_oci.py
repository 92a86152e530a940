"""Pods of ../shared/k8s-examples/ on the oci runtime, with images of those
names imported into the node's store (busybox re-tagged, and a
busybox-based "nginx" whose entrypoint is httpd serving nginx's html
directory): they reach the states Kubernetes' documentation describes."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from podmodel.codec import object_from_raw
from podmodel.defaults import apply_defaults
from podmodel.manifest import parse_documents
from podmodel.pod import Pod

from services.node_agent.oci.images import ImageStore
from tests.conftest import wait_for
from tests.integration.oci.conftest import NODE, OciHarness
from tests.integration.oci.test_oci_runtime import T, delete_and_wait, phase
from tests.k8s_examples import EXAMPLES


def example_pod(name: str) -> Pod:
    docs, errors = parse_documents((EXAMPLES / name).read_text())
    assert not errors, errors
    pod = object_from_raw(docs[0])
    assert isinstance(pod, Pod)
    pod.metadata.namespace = "default"
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 1
    apply_defaults(pod)
    return pod


@pytest.fixture
def example_images(oci: OciHarness) -> None:
    if not EXAMPLES.is_dir():
        pytest.skip(f"{EXAMPLES} not present")
    store = ImageStore(oci.config.image_root)
    busybox = store.ensure_busybox()
    for tag in ("registry.k8s.io/busybox:1.27.2", "busybox:1.28"):
        store.tag("busybox:latest", tag)
    if store.resolve("nginx:1.29") is None:
        store.import_path(
            store.layer_dirs(busybox)[0], "nginx:1.29", rootfs=True,
            entrypoint=["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"],
        )  # fmt: skip
        store.tag("nginx:1.29", "nginx:latest")


async def test_shared_volume_example_serves_what_the_init_container_wrote(
    oci: OciHarness, example_images: None
) -> None:
    await oci.store.create(example_pod("shared-volume.yaml"))
    running = await phase(oci, "shared-volume-example", "Running")

    async def page() -> str | None:
        try:
            reader, writer = await asyncio.open_connection(running.status.pod_ip, 80)
        except OSError:
            return None
        writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
        body = (await reader.read()).decode()
        writer.close()
        return body

    body = await wait_for(page, T, interval=0.1, message="the web container answers")
    assert "Hello from the init container" in body
    await delete_and_wait(oci, "shared-volume-example")


async def test_init_containers_example_without_internet_stays_initialising(
    oci: OciHarness, example_images: None
) -> None:
    """wget to info.cern.ch cannot succeed here: the init container fails
    and is restarted with back-off, the pod stays Pending (Init:Error /
    Init:CrashLoopBackOff), the app container never starts."""
    await oci.store.create(example_pod("init-containers.yaml"))

    async def failed_init() -> Any:
        p = await oci.pod("init-demo")
        if p is None or not p.status.init_container_statuses:
            return None
        st = p.status.init_container_statuses[0]
        term = st.state.terminated or st.last_state.terminated
        return p if term is not None and term.reason == "Error" else None

    # wget waits for its DNS lookup to time out first
    pod = await wait_for(failed_init, 3 * T, interval=0.1, message="the init container failed")
    assert pod.status.phase == "Pending"
    app = pod.status.container_statuses[0]
    assert app.state.waiting is not None and app.state.waiting.reason == "PodInitializing"
    await delete_and_wait(oci, "init-demo")


def test_examples_are_there() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip(f"{EXAMPLES} not present")
    assert (EXAMPLES / "shared-volume.yaml").exists()
    msgspec.json.encode(example_pod("init-containers.yaml"))
