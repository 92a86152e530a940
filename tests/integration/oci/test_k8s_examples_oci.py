"""The manifests of ../shared/k8s-examples/ applied as they are to a small
real cluster: the workload-controller and scheduler as processes, the
prober as a process, and one node-agent over the oci runtime (real runc
containers) in the test's process. Images of the manifests' names are
imported into the node's store: busybox re-tagged (busybox, alpine), a
busybox-based "nginx" whose entrypoint is httpd serving nginx's html
directory, and "bash" and "perl" images holding the host's own bash and
perl. Each example reaches the state Kubernetes' documentation describes;
where that state is an error here (wget to the internet), the status says
so as Kubernetes would.

One cluster serves the whole module (and test_exec_liveness_oci.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from podmodel.event import Event
from podmodel.manifest import parse_documents
from podmodel.pod import Pod
from podmodel.workloads import Deployment, Job, StatefulSet
from servicekit.bus import BusError
from servicekit.store import Store

from clients.podctl.client import PodbusClient
from clients.podctl.connection import Connection
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.node import NodeConfig
from services.node_agent.oci.images import ImageStore
from services.node_agent.oci.node import OciNode
from services.node_agent.oci.runtime import OciConfig, OciRuntime
from tests.conftest import stop_tasks, wait_for
from tests.integration.oci.conftest import NODE
from tests.k8s_examples import EXAMPLES as K8S_EXAMPLES
from tests.servers import ServerHandle

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = K8S_EXAMPLES  # the copy in tests/data (see tests/k8s_examples.py)
T = 30.0  # generous deadlines: the machine is shared

Obj = dict[str, Any]

#: the html nginx serves by default, so that a GET shows which "nginx" answered
NGINX_INDEX = "<h1>Welcome to nginx!</h1>\n"
#: busybox httpd in nginx's place; as nginx does, it stops at once on SIGTERM
#: (httpd itself, as a container's PID 1, would ignore it until the grace period ends)
ENTRYPOINT = """#!/bin/sh
httpd -f -p 80 -h /usr/share/nginx/html &
trap 'kill $!; exit 0' TERM INT QUIT
wait
"""


# ---------------------------------------------------------------- images


def _copy_into(root: Path, path: str) -> None:
    """`path` from the host into `root` at the same place (file content,
    symlinks followed), its directories made as needed."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(path).is_dir():
        shutil.copytree(path, target, symlinks=False, dirs_exist_ok=True)
    else:
        shutil.copy2(path, target)


def _add_host_program(root: Path, program: str) -> None:
    """A dynamically linked host program and the libraries ldd names."""
    _copy_into(root, program)
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            _copy_into(root, path)


def perl_modules() -> list[str] | None:
    """The files `perl -Mbignum=bpi` loads on this host (None: it cannot)."""
    perl = shutil.which("perl")
    if perl is None:
        return None
    out = subprocess.run(
        [perl, "-Mbignum=bpi", "-e", 'print "$_\\n" for values %INC'],
        capture_output=True,
        text=True,
    )
    return out.stdout.split() if out.returncode == 0 else None


def import_example_images(store: ImageStore, work: Path) -> bool:
    """Every image the examples name; returns whether a perl image exists."""
    busybox = store.ensure_busybox()
    base = store.layer_dirs(busybox)[0]
    for tag in ("registry.k8s.io/busybox:1.27.2", "busybox:1.28", "alpine:latest"):
        store.tag("busybox:latest", tag)

    def rootfs(name: str) -> Path:
        root = work / name
        shutil.copytree(base, root, symlinks=True)
        return root

    nginx = rootfs("nginx")
    html = nginx / "usr/share/nginx/html"
    html.mkdir(parents=True)
    (html / "index.html").write_text(NGINX_INDEX)
    script = nginx / "docker-entrypoint.sh"
    script.write_text(ENTRYPOINT)
    script.chmod(0o755)
    store.import_path(nginx, "nginx:1.29", rootfs=True, entrypoint=["/docker-entrypoint.sh"])
    for tag in ("nginx:latest", "nginx:1.15", "nginx:1.16.1", "registry.k8s.io/nginx-slim:0.7"):
        store.tag("nginx:1.29", tag)

    bash = rootfs("bash")
    _add_host_program(bash, os.path.realpath(shutil.which("bash") or "/bin/bash"))
    (bash / "bin/bash").unlink(missing_ok=True)
    os.symlink(os.path.realpath(shutil.which("bash") or "/bin/bash"), bash / "bin/bash")
    store.import_path(bash, "docker.io/library/bash:latest", rootfs=True, cmd=["bash"])

    modules = perl_modules()
    if modules is None:
        return False
    perl = rootfs("perl")
    program = os.path.realpath(shutil.which("perl") or "/usr/bin/perl")
    _add_host_program(perl, program)
    for module in modules:
        _copy_into(perl, module)
        # the XS parts (List::Util ...) are under auto/ of the same @INC dir
        for top in Path(module).parents:
            if (top / "auto").is_dir() and not (perl / str(top / "auto").lstrip("/")).exists():
                _copy_into(perl, str(top / "auto"))
    if program != "/usr/bin/perl":
        (perl / "usr/bin").mkdir(parents=True, exist_ok=True)
        os.symlink(program, perl / "usr/bin/perl")
    store.import_path(perl, "perl:latest", rootfs=True, cmd=["perl", "-de0"])
    return True


# ---------------------------------------------------------------- cluster


@dataclass
class Cluster:
    client: PodbusClient
    store: Store
    node: OciNode
    has_perl: bool

    async def apply(self, manifest: str, edit: Callable[[Obj], None] | None = None) -> list[Obj]:
        """Apply every document of an example (as `podctl apply -f`)."""
        docs, errors = parse_documents((EXAMPLES / manifest).read_text())
        assert not errors, errors
        applied = []
        for doc in docs:
            doc.setdefault("metadata", {})["namespace"] = "default"
            if edit is not None:
                edit(doc)
            reply = await self.client.apply(doc)
            applied.append(reply.object)
        return applied

    async def pod(self, name: str) -> Pod | None:
        return await self.store.get(Pod, "default", name)

    async def pods(self, **labels: str) -> list[Pod]:
        pods, _ = await self.store.list(Pod, "default")
        return [p for p in pods if all(p.metadata.labels.get(k) == v for k, v in labels.items())]

    async def logs(self, pod: Pod, container: str, *, previous: bool = False) -> str:
        return (await self.node.runtime.logs(pod, container, previous=previous)).decode()

    async def events(self, name: str, uid: str = "") -> list[Event]:
        """Events about pod `name` (of that `uid` only, when given: events
        outlive their pod, a pod of the same name may have run before)."""
        events, _ = await self.store.list(Event, "default")
        return [
            e
            for e in events
            if e.involved_object.name == name and (not uid or e.involved_object.uid == uid)
        ]

    async def delete(self, kind: str, name: str) -> None:
        """Delete a workload and wait until its pods are gone."""
        await self.client.delete(kind, "default", name, grace_period=1)

        async def gone() -> bool:
            pods = await self.pods()
            owned = [
                p
                for p in pods
                if any(r.name == name for r in p.metadata.owner_references)
                or p.metadata.name == name
            ]
            for p in owned:  # shortens the grace period of those the GC deleted
                if p.metadata.deletion_grace_period_seconds != 1:
                    with contextlib.suppress(Exception):
                        await self.store.delete(
                            Pod, "default", p.metadata.name, grace_period_seconds=1
                        )
            return not owned

        await wait_for(gone, T, interval=0.2, message=f"{kind} {name}'s pods removed")


async def _wipe(nats_url: str, redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name:
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


def start_services(nats_url: str, redis_url: str) -> list[subprocess.Popen[bytes]]:
    """The workload-controller, scheduler and the node's prober, as processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_", "OTEL_"))}
    env["PODBUS_LOG_LEVEL"] = "WARNING"
    urls = ["--nats-url", nats_url, "--redis-url", redis_url]
    controller = ["--leader-ttl", "3", "--job-backoff-base", "1"]
    commands = [
        ["-m", "services.workload_controller", *urls, *controller],
        ["-m", "services.scheduler", *urls, "--lease-ttl", "3"],
        ["-m", "services.prober", "--node", NODE, *urls],
    ]
    return [
        subprocess.Popen([sys.executable, *cmd], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        for cmd in commands
    ]


def stop_services(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def host_pi() -> str:
    return subprocess.run(
        ["perl", "-Mbignum=bpi", "-wle", "print bpi(1000)"], capture_output=True, text=True
    ).stdout.strip()


@contextlib.asynccontextmanager
async def running_cluster(
    config: OciConfig, nats_url: str, redis_url: str
) -> AsyncIterator[Cluster]:
    """Controllers, scheduler and prober as processes; the oci node here."""
    await _wipe(nats_url, redis_url)
    work = Path(tempfile.mkdtemp(prefix="podbus-k8s-examples-"))
    has_perl = await asyncio.to_thread(import_example_images, ImageStore(config.image_root), work)
    shutil.rmtree(work, ignore_errors=True)
    procs = start_services(nats_url, redis_url)
    stack = contextlib.AsyncExitStack()
    try:
        nc = await nats.connect(nats_url)
        stack.push_async_callback(nc.close)
        store = await Store.connect(redis_url, publish=nc.publish)
        stack.push_async_callback(store.close)
        node = OciNode(
            NodeConfig(name=NODE, runtime="oci"),
            config,
            store=store,
            nc=nc,
            probes="prober",
            backoff=BackoffConfig(initial=0.5, cap=2.0, reset_after=10.0),
            resync_s=5.0,
        )
        task = asyncio.create_task(node.run())
        stack.push_async_callback(stop_tasks, [task])
        await node.wait_synced(T)
        client = await stack.enter_async_context(
            PodbusClient.connect(Connection(server=nats_url, source="test"))
        )
        cluster = Cluster(client, store, node, has_perl)

        async def intake_answers() -> bool:
            try:
                await client.list("Pod", "default")
            except Exception:
                return False
            return True

        await wait_for(intake_answers, T, interval=0.2, message="the intake answers")
        yield cluster
        await _delete_everything(cluster)
    finally:
        await asyncio.to_thread(stop_services, procs)
        await stack.aclose()
        await OciRuntime(config).cleanup()


async def _delete_everything(cluster: Cluster) -> None:
    """Pods left by a test go the way Kubernetes deletes them (the node
    stops them), so the node's clean-up has nothing left to do."""
    for pod in await cluster.pods():
        with contextlib.suppress(Exception):
            await cluster.store.delete(Pod, "default", pod.metadata.name, grace_period_seconds=0)

    async def none_left() -> bool:
        return not await cluster.pods()

    with contextlib.suppress(AssertionError):
        await wait_for(none_left, T, interval=0.2, message="every pod removed")


@contextlib.asynccontextmanager
async def module_cluster(
    oci_config: OciConfig, nats_server: ServerHandle, redis_server: ServerHandle
) -> AsyncIterator[Cluster]:
    """What a module's `cluster` fixture yields (this one's and
    test_exec_liveness_oci.py's)."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"{EXAMPLES} not present")
    nats_server.start()
    redis_server.start()
    async with running_cluster(oci_config, nats_server.url, redis_server.url) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(
    oci_config: OciConfig, nats_server: ServerHandle, redis_server: ServerHandle
) -> AsyncIterator[Cluster]:
    async with module_cluster(oci_config, nats_server, redis_server) as c:
        yield c


# ---------------------------------------------------------------- helpers


async def until(
    check: Callable[[], Awaitable[Any]], what: str, timeout: float = T, interval: float = 0.2
) -> Any:
    return await wait_for(check, timeout, interval=interval, message=what)


async def http_get(ip: str, port: int = 80, path: str = "/") -> str | None:
    try:
        reader, writer = await asyncio.open_connection(ip, port)
    except OSError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
        return (await reader.read()).decode(errors="replace")
    except OSError:
        return None
    finally:
        writer.close()


def with_image(image: str) -> Callable[[Obj], None]:
    """An edit for `Cluster.apply`: the first container's image (as
    `kubectl set image` or an edited manifest)."""

    def edit(doc: Obj) -> None:
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return edit


def page(ip: str | None, path: str = "/") -> Callable[[], Awaitable[str | None]]:
    """What `until` polls for an HTTP answer at a pod's IP."""
    assert ip, "the pod has no IP"
    return lambda: http_get(ip, path=path)


def condition(obj: Any, kind: str) -> str | None:
    return next((c.status for c in obj.status.conditions if c.type == kind), None)


async def job_complete(cluster: Cluster, name: str) -> Job:
    async def complete() -> Job | None:
        job = await cluster.store.get(Job, "default", name)
        return job if job is not None and condition(job, "Complete") == "True" else None

    try:
        found: Job = await until(complete, f"job {name} Complete", timeout=2 * T)
    except AssertionError:
        pods = [
            (p.metadata.name, p.status.phase, p.status.container_statuses)
            for p in await cluster.pods()
        ]
        raise AssertionError(f"job {name} not Complete; pods: {pods}") from None
    return found


def body_of(response: str) -> str:
    return response.partition("\r\n\r\n")[2]


# ---------------------------------------------------------------- tests


async def test_deployment_runs_two_ready_nginx_replicas(cluster: Cluster) -> None:
    """application/deployment.yaml: `kubectl get deployments` shows
    nginx-deployment 2/2 up to date and available; each pod answers on
    port 80 at its IP. Then the Deployments page's update (rolls out) and
    its image typo (stalls, the image cannot be had)."""
    await cluster.apply("deployment.yaml")

    async def available() -> Deployment | None:
        d = await cluster.store.get(Deployment, "default", "nginx-deployment")
        s = d.status if d else None
        ok = s and s.ready_replicas == s.available_replicas == s.updated_replicas == 2
        return d if ok and condition(d, "Available") == "True" else None

    deployment = await until(available, "nginx-deployment 2/2 available")
    assert deployment.status.replicas == 2
    pods = await cluster.pods(app="nginx")
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.metadata.name.startswith("nginx-deployment-")
        assert pod.status.container_statuses[0].ready
        response = await until(page(pod.status.pod_ip), f"{pod.metadata.name}:80")
        assert "200 OK" in response and NGINX_INDEX in response
    assert len({p.status.pod_ip for p in pods}) == 2

    # The Deployments page goes on: an update to nginx:1.16.1 rolls out ...
    await cluster.apply("deployment.yaml", with_image("nginx:1.16.1"))

    async def rolled_out() -> Deployment | None:
        d = await cluster.store.get(Deployment, "default", "nginx-deployment")
        s = d.status if d else None
        ok = s and s.observed_generation >= 2 and s.replicas == s.updated_replicas == 2
        return d if ok and s and s.available_replicas == 2 else None

    await until(rolled_out, "the rollout to nginx:1.16.1", timeout=2 * T)
    pods = [p for p in await cluster.pods(app="nginx") if p.metadata.deletion_timestamp is None]
    assert {p.spec.containers[0].image for p in pods} == {"nginx:1.16.1"}

    # ... and a typo in the image (nginx:1.161, which nobody imported) stalls
    # the next one: one new pod cannot get its image, the two old ones keep
    # serving (maxSurge 1, maxUnavailable 0 for two replicas)
    await cluster.apply("deployment.yaml", with_image("nginx:1.161"))

    async def stalled() -> tuple[Deployment, Pod] | None:
        d = await cluster.store.get(Deployment, "default", "nginx-deployment")
        new = [
            p
            for p in await cluster.pods(app="nginx")
            if p.spec.containers[0].image == "nginx:1.161"
        ]
        st = new[0].status.container_statuses if len(new) == 1 else []
        waiting = st[0].state.waiting if st else None
        s = d.status if d else None
        ok = s and (s.replicas, s.updated_replicas, s.available_replicas) == (3, 1, 2)
        if d and ok and waiting and waiting.reason == "ErrImageNeverPull":
            return d, new[0]
        return None

    deployment, stuck = await until(stalled, "the rollout to nginx:1.161 stalled")
    waiting = stuck.status.container_statuses[0].state.waiting
    assert waiting is not None and "podbus image import nginx:1.161" in waiting.message
    assert stuck.status.phase == "Pending"
    assert deployment.status.unavailable_replicas == 1
    await cluster.delete("Deployment", "nginx-deployment")


async def test_indexed_job_completes_every_index(cluster: Cluster) -> None:
    """application/job/indexed-job.yaml: 5 completions, 3 at a time; each
    pod's worker prints its item reversed (`kubectl logs` shows "xuq" for
    index 3); the job is Complete with completedIndexes 0-4."""
    await cluster.apply("indexed-job.yaml")
    job = await job_complete(cluster, "indexed-job")
    assert job.status.succeeded == 5
    assert job.status.failed == 0
    assert job.status.completed_indexes == "0-4"
    pods = await cluster.pods(**{"job-name": "indexed-job"})
    reversed_items = {"0": "oof", "1": "rab", "2": "zab", "3": "xuq", "4": "zyx"}
    seen = {}
    for pod in pods:
        if pod.status.phase != "Succeeded":
            continue
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert pod.metadata.name.startswith(f"indexed-job-{index}-")
        assert pod.spec.hostname == f"indexed-job-{index}"
        seen[index] = (await cluster.logs(pod, "worker")).strip()
    assert seen == reversed_items
    await cluster.delete("Job", "indexed-job")


async def test_job_pi_prints_a_thousand_digits(cluster: Cluster) -> None:
    """controllers/job.yaml: the job completes (1/1) and its pod's log is
    pi to 1000 places, as `perl -Mbignum=bpi -wle 'print bpi(1000)'` prints."""
    await cluster.apply("job-pi.yaml")
    if not cluster.has_perl:
        # no perl on this host to build the image from: the pod waits as
        # Kubernetes' does when the image cannot be had
        async def waiting() -> Pod | None:
            pods = await cluster.pods(**{"job-name": "pi"})
            st = pods[0].status.container_statuses if pods else []
            w = st[0].state.waiting if st else None
            return pods[0] if w is not None and w.reason == "ErrImageNeverPull" else None

        await until(waiting, "pi's pod waiting with ErrImageNeverPull")
        await cluster.delete("Job", "pi")
        return
    job = await job_complete(cluster, "pi")
    assert job.status.succeeded == 1 and job.status.failed == 0
    (pod,) = await cluster.pods(**{"job-name": "pi"})
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term is not None and term.exit_code == 0 and term.reason == "Completed"
    digits = (await cluster.logs(pod, "pi")).strip()
    expected = await asyncio.to_thread(host_pi)
    assert digits == expected
    assert digits.startswith("3.14159265358979323846264338327950288419716939937510")
    assert len(digits) == 1001
    await cluster.delete("Job", "pi")


async def test_job_with_sidecar_completes_and_the_sidecar_stops_after_the_main_container(
    cluster: Cluster,
) -> None:
    """application/job/job-sidecar.yaml: the logshipper sidecar starts
    first, keeps running and ships what myjob logged; when myjob exits the
    sidecar is stopped (after terminationGracePeriodSeconds, 30 s, since
    `tail` ignores SIGTERM), the pod Succeeds and the job is Complete."""
    await cluster.apply("job-sidecar.yaml")
    job = await job_complete(cluster, "myjob")
    assert job.status.succeeded == 1
    (pod,) = await cluster.pods(**{"job-name": "myjob"})
    assert pod.status.phase == "Succeeded"
    main = pod.status.container_statuses[0].state.terminated
    sidecar_status = pod.status.init_container_statuses[0]
    sidecar = sidecar_status.state.terminated
    assert main is not None and main.exit_code == 0 and main.reason == "Completed"
    assert sidecar is not None, sidecar_status
    assert sidecar_status.restart_count == 0
    assert sidecar.started_at is not None and main.started_at is not None
    assert sidecar.started_at <= main.started_at  # the sidecar started first
    assert main.finished_at is not None and sidecar.finished_at is not None
    assert sidecar.finished_at >= main.finished_at  # and was stopped after myjob
    # `tail` as a container's PID 1 ignores SIGTERM: it is killed at the end
    # of the grace period, as on Kubernetes; the pod still Succeeds
    assert (sidecar.exit_code, sidecar.reason) == (137, "Error")
    assert "logging" in await cluster.logs(pod, "logshipper")
    await cluster.delete("Job", "myjob")


async def test_statefulset_pods_come_up_in_order_with_their_own_volumes(
    cluster: Cluster,
) -> None:
    """application/web/web.yaml, as the StatefulSet basics tutorial walks
    it: web-0 then web-1 Running and Ready, hostnames web-0 and web-1, each
    with its own www-web-N volume; what is written to web-0's volume is
    still served after web-0 is deleted and comes back."""

    docs, _ = parse_documents((EXAMPLES / "web-statefulset.yaml").read_text())
    assert [d["kind"] for d in docs] == ["Service", "StatefulSet"]
    service_doc, sts_doc = docs
    # podbus has no Service kind (no cluster DNS): the headless Service is
    # refused with a message naming the kind, as kubectl reports a kind a
    # cluster does not serve; the StatefulSet does not need it
    with pytest.raises(BusError) as refused:
        await cluster.client.apply(service_doc)
    assert refused.value.reply.reason == "BadRequest"
    assert "unknown kind 'Service'" in str(refused.value)
    sts_doc["metadata"]["namespace"] = "default"
    await cluster.client.apply(sts_doc)

    async def ready() -> StatefulSet | None:
        sts = await cluster.store.get(StatefulSet, "default", "web")
        return sts if sts is not None and sts.status.ready_replicas == 2 else None

    await until(ready, "web 2/2 ready", timeout=2 * T)
    web0, web1 = await cluster.pod("web-0"), await cluster.pod("web-1")
    assert web0 is not None and web1 is not None
    started0 = web0.status.container_statuses[0].state.running
    started1 = web1.status.container_statuses[0].state.running
    assert started0 is not None and started1 is not None
    created1 = web1.metadata.creation_timestamp
    assert created1 is not None and started0.started_at is not None
    assert created1 >= started0.started_at  # OrderedReady: web-1 after web-0 runs
    for i, pod in enumerate((web0, web1)):
        assert pod.status.phase == "Running"
        (claim,) = [v for v in pod.spec.volumes if v.name == "www"]
        assert claim.persistent_volume_claim is not None
        assert claim.persistent_volume_claim.claim_name == f"www-web-{i}"
        name = pod.metadata.name
        reply = await cluster.client.exec(
            NODE, "default", name, "nginx",
            ["sh", "-c", 'echo "$(hostname)" > /usr/share/nginx/html/index.html; hostname'],
            timeout=10,
        )  # fmt: skip
        assert (reply.exit_code, reply.error, reply.stdout.strip()) == (0, "", name)
        response = await until(page(pod.status.pod_ip), f"{name}:80")
        assert body_of(response).strip() == name

    # web-0 deleted: the controller makes it again, with the same volume
    uid = web0.metadata.uid
    await cluster.store.delete(Pod, "default", "web-0", grace_period_seconds=1)

    async def back() -> Pod | None:
        p = await cluster.pod("web-0")
        ok = p is not None and p.metadata.uid != uid and p.status.phase == "Running"
        return p if ok else None

    again = await until(back, "web-0 back", timeout=2 * T)
    response = await until(page(again.status.pod_ip), "web-0:80 again")
    assert body_of(response).strip() == "web-0"
    await cluster.delete("StatefulSet", "web")


async def test_shared_volume_example_serves_what_the_init_container_wrote(
    cluster: Cluster,
) -> None:
    """pods/multi-container/shared-volume.yaml: the web container serves
    the page the init container wrote into the shared emptyDir."""
    await cluster.apply("shared-volume.yaml")

    async def running() -> Pod | None:
        p = await cluster.pod("shared-volume-example")
        return p if p is not None and p.status.phase == "Running" else None

    pod = await until(running, "shared-volume-example Running")
    init = pod.status.init_container_statuses[0].state.terminated
    assert init is not None and init.reason == "Completed"
    response = await until(page(pod.status.pod_ip, "/index.html"), "web:80")
    assert "Hello from the init container" in response
    await cluster.delete("Pod", "shared-volume-example")


async def test_init_containers_example_without_internet_stays_initialising(
    cluster: Cluster,
) -> None:
    """pods/init-containers.yaml: wget to info.cern.ch cannot succeed on
    this machine, so the init container fails and is restarted with
    back-off; the pod stays Pending (Init:Error / Init:CrashLoopBackOff) and
    the app container waits with PodInitializing, as Kubernetes shows it
    when the init container cannot finish."""
    await cluster.apply("init-containers.yaml")

    async def failed_init() -> Pod | None:
        p = await cluster.pod("init-demo")
        if p is None or not p.status.init_container_statuses:
            return None
        st = p.status.init_container_statuses[0]
        term = st.state.terminated or st.last_state.terminated
        return p if term is not None and term.reason == "Error" else None

    # wget waits for its DNS lookup to time out first
    pod = await until(failed_init, "the init container failed", timeout=3 * T)
    assert pod.status.phase == "Pending"
    app = pod.status.container_statuses[0]
    assert app.state.waiting is not None and app.state.waiting.reason == "PodInitializing"
    assert not app.ready
    initialized = next(c for c in pod.status.conditions if c.type == "Initialized")
    assert (initialized.status, initialized.reason, initialized.message) == (
        "False",
        "ContainersNotInitialized",
        "containers with incomplete status: [install]",
    )
    install = pod.status.init_container_statuses[0]
    failed = install.state.terminated or install.last_state.terminated
    assert failed is not None and failed.exit_code == 1
    # (the attempt that failed may be the previous one by now)
    said = await cluster.logs(pod, "install") + await cluster.logs(pod, "install", previous=True)
    assert "info.cern.ch" in said, said  # wget: bad address 'info.cern.ch'
    await cluster.delete("Pod", "init-demo")
