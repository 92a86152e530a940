"""Real-container pod startup (issue 6): N busybox pods on one oci node,
created in one batch; creation -> Running (all containers running) and ->
Ready (a tcpSocket readiness probe run by the prober), p50 / p99, next to
plain `runc run --detach` of the same busybox rootfs, N at once, measured
in the same run; podbus's overhead printed as a ratio. Goal: p99
creation-to-Running under 1 s for 50 pods. Also the CPU (all cores) per
container start of the whole machine for plain runc and for podbus, and
podbus's by part: with 2 cores and 50 containers started at once, the
p99 is about 50 x (machine CPU per start) / 2, so these lines say where
the time goes.

Starts its own nats-server and redis-server, and as processes
`python -m services.node_agent --runtime oci` (own bridge, pod CIDR, state
and run dirs) and `python -m services.prober`; removes everything at the
end (`--cleanup`). Needs root, runc and busybox-static. The node keeps its
bundles and runc's state on a tmpfs (its run dir); plain runc is given a
tmpfs for the same.

    sudo .venv/bin/python bench/oci_startup.py [--pods 50] [--base-dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The bench polls its own watch results and the store: ASYNC110 is its method.
# ruff: noqa: ASYNC110

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import nats
from nats.aio.msg import Msg
from podmodel.codec import WatchEvent
from podmodel.node import Node
from podmodel.pod import Pod
from servicekit.embedded import NatsServer, RedisServer
from servicekit.store import Store

from services.node_agent.oci import hostops
from services.node_agent.oci.images import ImageStore
from services.node_agent.oci.runtime import OciConfig, prerequisites

ROOT = Path(__file__).resolve().parent.parent
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NODE = "oci-bench"
_EVENT = msgspec.msgpack.Decoder(WatchEvent)
_POD = msgspec.msgpack.Decoder(Pod)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def bench_pod(i: int) -> Pod:
    return msgspec.convert(
        {
            "metadata": {"name": f"bb-{i}", "namespace": "default"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "web",
                        "image": "busybox",
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/tmp"],
                        "readinessProbe": {
                            "tcpSocket": {"port": 8080},
                            "periodSeconds": 1,
                            "timeoutSeconds": 1,
                        },
                    }
                ],
            },
        },
        Pod,
    )


def machine_cpu() -> float:
    """Seconds of CPU the whole machine has been busy (all cores, /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU one process has used itself (user + system)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {"machine": machine_cpu(), **{name: process_cpu(pid) for name, pid in pids.items()}}


async def run_pods(
    args: argparse.Namespace, nats_url: str, redis_url: str, pids: dict[str, int]
) -> dict[str, list[float]]:
    """Create the pods in one batch; creation -> Running / Ready per pod;
    and the CPU each part used from creation until every pod ran."""
    nc = await nats.connect(nats_url)
    store = await Store.connect(redis_url, publish=nc.publish)
    running: dict[str, float] = {}
    ready: dict[str, float] = {}

    async def on_msg(msg: Msg) -> None:
        now = time.time()
        event = _EVENT.decode(msg.data)
        pod = _POD.decode(event.object)
        name = pod.metadata.name
        cs = pod.status.container_statuses
        if name not in running and cs and all(c.state.running for c in cs):
            running[name] = now
        if name not in ready and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions
        ):
            ready[name] = now

    await nc.subscribe("podbus.watch.pod.>", cb=on_msg)
    await nc.flush()
    async with asyncio.timeout(30):  # the node registered: the agent is up
        while not any(n.metadata.name == NODE for n in (await store.list(Node))[0]):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # its informer has listed
    pods = [bench_pod(i) for i in range(args.pods)]
    cpu_before = cpu_snapshot(pids)
    cpu_running: dict[str, float] = {}
    t0 = time.time()
    await store.create_many(pods)
    created = time.time()
    deadline = created + args.timeout
    while (len(ready) < args.pods or len(running) < args.pods) and time.time() < deadline:
        if not cpu_running and len(running) == args.pods:
            cpu_running = cpu_snapshot(pids)
        await asyncio.sleep(0.02)
    cpu_running = cpu_running or cpu_snapshot(pids)
    print(f"created {args.pods} pods in one batch ({created - t0:.3f}s to write)")
    to_running = [running[n] - created for n in running]
    to_ready = [ready[n] - created for n in ready]
    if len(to_running) < args.pods or len(to_ready) < args.pods:
        print(
            f"WARNING: only {len(to_running)} running / {len(to_ready)} ready within {args.timeout}s; see the node-agent log"
        )
    t_del = time.time()
    await store.delete_many([(Pod, "default", p.metadata.name, 1, None) for p in pods])
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while any([await store.get(Pod, "default", p.metadata.name) for p in pods]):
                await asyncio.sleep(0.2)
    print(f"deleted {args.pods} pods in {time.time() - t_del:.2f}s")
    await store.close()
    await nc.close()
    used = {k: cpu_running[k] - cpu_before[k] for k in cpu_before}
    others = used["machine"] - sum(v for k, v in used.items() if k != "machine")
    return {
        "running": to_running,
        "ready": to_ready,
        "cpu": [1000 * used[k] / args.pods for k in ("machine", *pids)]
        + [1000 * others / args.pods],
    }


def prepare_plain(n: int, base: Path, layer: Path) -> list[Path]:
    """N runc bundles of the busybox rootfs running httpd, as the pods do."""
    bundles = []
    for i in range(n):
        b = base / f"b{i}"
        b.mkdir(parents=True)
        subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
        cfg = json.loads((b / "config.json").read_text())
        cfg["root"] = {"path": str(layer), "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
        cfg["linux"]["cgroupsPath"] = f"/podbus-bench-plain/c{i}"
        (b / "config.json").write_text(json.dumps(cfg))
        (b / "err").touch()
        bundles.append(b)
    return bundles


async def launch_plain(bundles: list[Path], runc_root: str) -> list[float]:
    """`runc run --detach` of every bundle at once; seconds each took."""

    async def one(i: int, b: Path, err_fd: int) -> float:
        # the container inherits runc's stdio: a file, not a pipe we would wait on
        t = time.time()
        proc = await asyncio.create_subprocess_exec(
            "runc", "--root", runc_root, "run", "--detach", "--bundle", str(b), f"plain-{i}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err_fd,
        )  # fmt: skip
        await proc.wait()
        if proc.returncode != 0:
            print(f"plain runc {i} failed (exit {proc.returncode}), see {b / 'err'}")
        return time.time() - t

    fds = [os.open(b / "err", os.O_WRONLY) for b in bundles]
    try:
        before = machine_cpu()
        took = list(await asyncio.gather(*(one(i, b, fds[i]) for i, b in enumerate(bundles))))
        took.append(1000 * (machine_cpu() - before) / len(bundles))  # CPU ms per container, last
        return took
    finally:
        for fd in fds:
            os.close(fd)


def remove_plain(n: int, runc_root: str) -> None:
    for i in range(n):
        subprocess.run(
            ["runc", "--root", runc_root, "kill", f"plain-{i}", "KILL"], capture_output=True
        )
    for i in range(n):
        for _ in range(50):
            r = subprocess.run(
                ["runc", "--root", runc_root, "delete", "--force", f"plain-{i}"],
                capture_output=True,
            )
            if r.returncode == 0:
                break
            time.sleep(0.05)
    for ctl in Path("/sys/fs/cgroup").iterdir():
        with contextlib.suppress(OSError):
            (ctl / "podbus-bench-plain").rmdir()


def start_services(
    base: Path, nats_url: str, redis_url: str, config: OciConfig
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    agent_cmd = [
        sys.executable, "-m", "services.node_agent", "--runtime", "oci", "--name", NODE,
        "--nats-url", nats_url, "--redis-url", redis_url,
        "--state-dir", config.state_dir, "--run-dir", config.run_dir,
        "--runc-root", config.runc_root,
        "--image-root", config.image_root, "--bridge", config.bridge,
        "--pod-cidr", config.pod_cidr, "--max-pods", "500",
    ]  # fmt: skip
    prober_cmd = [
        sys.executable, "-m", "services.prober", "--node", NODE,
        "--nats-url", nats_url, "--redis-url", redis_url,
    ]  # fmt: skip
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    for name, cmd in (("node-agent", agent_cmd), ("prober", prober_cmd)):
        out = (logs / f"{name}.log").open("wb")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out))
    return procs


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pods", type=int, default=50)
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument(
        "--base-dir",
        default=None,
        help="where the node's state, runc root and images go (default: the system temp "
        "dir; /dev/shm puts them on tmpfs, as containerd keeps bundles under /run)",
    )
    args = p.parse_args()
    problems = prerequisites(OciConfig())
    if problems:
        print("cannot run:\n  " + "\n  ".join(problems))
        return 2
    base = Path(tempfile.mkdtemp(prefix="podbus-oci-bench-", dir=args.base_dir))
    forwarding = IP_FORWARD.read_text()  # the node turns it on for pod NAT; put it back
    config = OciConfig(
        state_dir=str(base / "state"),
        run_dir=str(base / "run"),
        image_root=str(base / "images"),
        bridge="pbbench0",
        pod_cidr="10.99.0.0/24",
    )
    try:
        images = ImageStore(config.image_root)
        layer = images.layer_dirs(images.ensure_busybox())[0]
        # plain runc gets what the node gets: bundles and its root on a tmpfs
        plain_run = base / "plain"
        hostops.ensure_run_tmpfs(plain_run, config.run_dir_size)
        try:
            bundles = prepare_plain(args.pods, plain_run, layer)
            try:
                *plain, plain_cpu = asyncio.run(launch_plain(bundles, str(plain_run / "runc")))
            finally:
                remove_plain(args.pods, str(plain_run / "runc"))
        finally:
            hostops.release_run_tmpfs(plain_run)
        nats_srv = NatsServer(data_dir=base / "nats")
        redis_srv = RedisServer(data_dir=base / "redis")
        nats_srv.start()
        redis_srv.start()
        procs = start_services(base, nats_srv.url, redis_srv.url, config)
        try:
            pids = {"node-agent": procs[0].pid, "prober": procs[1].pid}
            results = asyncio.run(run_pods(args, nats_srv.url, redis_srv.url, pids))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            nats_srv.close()
            redis_srv.close()
    finally:
        subprocess.run(
            [sys.executable, "-m", "services.node_agent", "--cleanup", "--state-dir", config.state_dir,
             "--run-dir", config.run_dir, "--runc-root", config.runc_root, "--image-root", config.image_root,
             "--bridge", config.bridge, "--pod-cidr", config.pod_cidr],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
        IP_FORWARD.write_text(forwarding)
    run_p = results["running"]
    ready_p = results["ready"]
    print(f"\n{args.pods} busybox pods on one oci node (httpd, tcpSocket readiness, period 1s)")
    print(f"{'':32} {'p50':>8} {'p99':>8} {'max':>8}")
    for label, values in (
        ("plain runc run --detach", plain),
        ("podbus creation -> Running", run_p),
        ("podbus creation -> Ready", ready_p),
    ):
        print(
            f"{label:32} {pct(values, 50):8.3f} {pct(values, 99):8.3f} {max(values or [float('nan')]):8.3f}"
        )
    machine, agent, prober, others = results["cpu"]
    print("\nCPU per container start (all cores), creation until every pod ran:")
    print(f"plain runc run, whole machine: {plain_cpu:.1f} ms")
    print(f"podbus, whole machine: {machine:.1f} ms")
    print(f"podbus, node-agent: {agent:.1f} ms")
    print(f"podbus, prober: {prober:.1f} ms")
    print(f"podbus, everything else (runc, shims, ip, kernel, nats, redis, bench): {others:.1f} ms")
    if plain and run_p:
        print(f"\noverhead (Running vs plain runc): p50 x{pct(run_p, 50) / pct(plain, 50):.1f}, "
              f"p99 x{pct(run_p, 99) / pct(plain, 99):.1f}")  # fmt: skip
        goal = pct(run_p, 99) < 1.0
        print(
            f"goal p99 creation->Running < 1 s: {'met' if goal else 'NOT met'} ({pct(run_p, 99):.3f}s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
