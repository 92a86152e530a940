"""Benchmark: the workload-controller's intake and its scale-up, same run,
own servers.

Starts its own nats-server and redis-server (no AOF) and the
workload-controller as a process (`python -m services.workload_controller`,
intake + leader-elected controllers), then measures:

1. applies/s: concurrent clients send `podbus.api.apply` requests (a new
   Pod each, JSON in and out, as any client would) for `--seconds`, in
   `--rounds` rounds that alternate with the echo measurement (each figure
   is the sum over the rounds, each round's ratio is printed too);
2. echo/s: the same clients, the same JSON payload, against a raw NATS
   request-reply echo responder (nats-py, in its own process, like the
   service), measured in the same run;
3. the ratio applies/echo (goal >= 0.3), and for each measurement the CPU
   time per request of every process involved (the intake or the echo
   responder, nats-server, redis-server, this process's clients): the
   ratio depends on what else loads the machine, these figures much less;
4. a Deployment scaled from 1 to `--replicas` (10,000) replicas: seconds
   until every pod object exists in the store (the controller's work; no
   scheduler or nodes compete for the two cores unless `--nodes N` starts
   the scheduler and a hollow node-agent with N simulated nodes).

Prints `<scenario>: <value> <unit>` lines.

    .venv/bin/python bench/intake.py [--clients 32] [--seconds 5] [--replicas 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from servicekit.embedded import NatsServer, RedisServer  # noqa: E402

ECHO_SUBJECT = "bench.echo"

ECHO_SERVER = """
import asyncio, sys
import nats  # noqa: E402

async def main(url):
    nc = await nats.connect(url)
    async def echo(msg):
        await msg.respond(msg.data)
    await nc.subscribe(sys.argv[2], queue="echo", cb=echo)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


def pod_request(i: int) -> bytes:
    """The apply request a plain client sends: a realistic Pod as JSON."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-{i:07d}",
            "namespace": "bench",
            "labels": {"app": "bench", "tier": "frontend"},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    "env": [{"name": "MODE", "value": "bench"}],
                }
            ]
        },
    }
    return json.dumps({"object": pod}).encode()


_NAMES = iter(range(10**9))


async def drive(
    url: str, subject: str, clients: int, seconds: float, payload_for: object
) -> tuple[int, int]:
    """`clients` concurrent request loops over a few connections for
    `seconds`; returns (successful replies, errors)."""
    conns = [await nats.connect(url) for _ in range(min(4, clients))]
    counter = _NAMES  # shared by every run: each apply is a new Pod, never an update
    ok = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(nc: nats.NATS) -> None:
        nonlocal ok, errors
        while time.perf_counter() < deadline:
            body = payload_for(next(counter))  # type: ignore[operator]
            try:
                msg = await nc.request(subject, body, timeout=10)
            except Exception:
                errors += 1
                continue
            if msg.data[:9] == b'{"error":':
                errors += 1
            else:
                ok += 1

    try:
        await asyncio.gather(*(loop(conns[i % len(conns)]) for i in range(clients)))
    finally:
        for nc in conns:
            await nc.close()
    return ok, errors


async def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


async def scale_up(nats_url: str, redis_url: str, replicas: int) -> float:
    """Seconds from applying replicas=N to N pod objects in the store."""
    nc = await nats.connect(nats_url)
    r = aioredis.Redis.from_url(redis_url)

    def deployment(n: int) -> bytes:
        d = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "big", "namespace": "scale"},
            "spec": {
                "replicas": n,
                "selector": {"matchLabels": {"app": "big"}},
                "template": {
                    "metadata": {"labels": {"app": "big"}},
                    "spec": {"containers": [{"name": "c", "image": "pause:3"}]},
                },
            },
        }
        return json.dumps({"object": d}).encode()

    async def pods() -> int:
        return int(await r.scard("podbus:idx:pod:ns:scale"))

    try:
        await nc.request("podbus.api.apply", deployment(1), timeout=10)
        await wait_until(lambda: _ge(pods, 1), 30, "the first pod")
        start = time.perf_counter()
        reply = await nc.request("podbus.api.apply", deployment(replicas), timeout=10)
        assert b'"error"' not in reply.data[:20], reply.data[:300]
        await wait_until(lambda: _ge(pods, replicas), 120, f"{replicas} pods")
        return time.perf_counter() - start
    finally:
        await nc.close()
        await r.aclose()


async def _ge(count: object, n: int) -> bool:
    return int(await count()) >= n  # type: ignore[operator]


def cpu_seconds(procs: list[Any]) -> float:
    """User + system CPU time the processes (anything with a `pid`) have used
    so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in procs:
        try:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AttributeError):
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def settle(procs: list[Any], timeout: float = 5.0) -> None:
    """Wait until the servers are idle (below 5% of a core over 0.1 s), so
    that one measurement's left-over work (JetStream writing its file store,
    say) is not charged to the next."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = cpu_seconds(procs)
        await asyncio.sleep(0.1)
        if cpu_seconds(procs) - before < 0.005:
            return


class CpuMeter:
    """CPU used per request by each process involved in one measurement."""

    def __init__(self, parts: dict[str, list[Any]]) -> None:
        self.parts = parts
        self.start = {name: cpu_seconds(procs) for name, procs in parts.items()}

    def total_us(self) -> dict[str, float]:
        """Microseconds of CPU used since the start, by part."""
        return {
            name: 1e6 * (cpu_seconds(procs) - self.start[name])
            for name, procs in self.parts.items()
        }


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        natsd = NatsServer(Path(tmp) / "nats")
        redisd = RedisServer(Path(tmp) / "redis", appendonly=False)
        natsd.start()
        redisd.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PODBUS_"))}
        env["PODBUS_LOG_LEVEL"] = "WARNING"
        urls = ["--nats-url", natsd.url, "--redis-url", redisd.url]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(args.replicas_per_side):
                echo = start([sys.executable, "-c", ECHO_SERVER, natsd.url, ECHO_SUBJECT], env)
                procs.append(echo)
                assert echo.stdout is not None and echo.stdout.readline().strip() == b"ready"
            controller = [
                sys.executable,
                "-m",
                "services.workload_controller",
                *urls,
                "--burst-replicas",
                str(args.burst),
                "--slow-start-batch",
                str(args.slow_start),
                *(["--controllers", "off"] if args.intake_only else []),
            ]
            echoes_procs = list(procs)
            procs.append(start(controller, env))
            for _ in range(args.replicas_per_side - 1):  # more intake replicas (queue group)
                procs.append(start([*controller, "--controllers", "off"], env))
            intakes = procs[len(echoes_procs) :]
            nc = await nats.connect(natsd.url)

            async def intake_up() -> bool:
                try:
                    await nc.request("podbus.api.list", b'{"kind": "Pod"}', timeout=1)
                except Exception:
                    return False
                return True

            await wait_until(intake_up, 30, "the intake")
            await nc.close()

            # warm-up, then both measurements in the same run
            await drive(natsd.url, "podbus.api.apply", args.clients, 1.0, pod_request)
            await drive(natsd.url, ECHO_SUBJECT, args.clients, 1.0, pod_request)
            me = SimpleNamespace(pid=os.getpid())
            servers: dict[str, list[Any]] = {
                "nats-server": [natsd.proc],
                "redis-server": [redisd.proc],
                "clients": [me],
            }
            # Alternating rounds, each figure summed over them: a drift in what
            # else loads the machine weighs on both sides alike.
            ok_apply = err_apply = ok_echo = err_echo = 0
            apply_cpu: dict[str, float] = {}
            echo_cpu: dict[str, float] = {}
            round_ratios = []
            idle = [natsd.proc, redisd.proc, *procs]
            for _ in range(args.rounds):
                await settle(idle)
                meter = CpuMeter({"intake": intakes, **servers})
                ok, err = await drive(
                    natsd.url, "podbus.api.apply", args.clients, args.seconds, pod_request
                )
                for name, us in meter.total_us().items():
                    apply_cpu[name] = apply_cpu.get(name, 0.0) + us
                ok_apply, err_apply, round_applies = ok_apply + ok, err_apply + err, ok
                await settle(idle)
                meter = CpuMeter({"echo responder": echoes_procs, **servers})
                ok, err = await drive(
                    natsd.url, ECHO_SUBJECT, args.clients, args.seconds, pod_request
                )
                for name, us in meter.total_us().items():
                    echo_cpu[name] = echo_cpu.get(name, 0.0) + us
                ok_echo, err_echo = ok_echo + ok, err_echo + err
                round_ratios.append(round_applies / max(ok, 1))
            elapsed = args.seconds * args.rounds
            applies = ok_apply / elapsed
            echoes = ok_echo / elapsed
            side = f"{args.clients} clients, {args.replicas_per_side} server process(es)"
            print(f"apply pod via podbus.api.apply ({side}): {applies:.0f} applies/s")
            print(f"raw NATS request-reply echo ({side}): {echoes:.0f} requests/s")
            print(f"apply/echo ratio: {applies / echoes:.2f} ratio (goal >= 0.3)")
            rounds = " ".join(f"{r:.2f}" for r in round_ratios)
            print(f"apply/echo ratio by round ({args.rounds} x {args.seconds:g} s each): {rounds}")
            # Where the ratio comes from, independent of what else loads the machine.
            for name, us in apply_cpu.items():
                print(f"apply: {name} CPU per apply: {us / max(ok_apply, 1):.0f} us")
            for name, us in echo_cpu.items():
                print(f"echo: {name} CPU per request: {us / max(ok_echo, 1):.0f} us")
            if err_apply or err_echo:
                print(f"errors: {err_apply + err_echo} requests")

            if args.intake_only:
                return
            if args.nodes:  # only now, so they do not compete with the intake figures
                procs.append(start([sys.executable, "-m", "services.scheduler", *urls], env))
                procs.append(
                    start(
                        [
                            sys.executable,
                            "-m",
                            "services.node_agent",
                            "--runtime",
                            "simulated",
                            "--nodes",
                            str(args.nodes),
                            "--max-pods",
                            str(max(110, args.replicas // args.nodes + 10)),
                            "--events",
                            "off",
                            *urls,
                        ],
                        env,
                    )
                )
            # From a quiet start: the controllers' informers first take in the
            # watch events of every pod the apply rounds created.
            await settle([natsd.proc, redisd.proc, *procs], timeout=120)
            seconds = await scale_up(natsd.url, redisd.url, args.replicas)
            print(f"deployment scale-up 1 -> {args.replicas} (all pods created): {seconds:.2f} s")
            print(f"deployment scale-up pod creation rate: {args.replicas / seconds:.0f} pods/s")
        finally:
            stop(procs)
            natsd.close()
            redisd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating apply/echo measurements")
    parser.add_argument("--replicas", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=500, help="controller --burst-replicas")
    parser.add_argument("--slow-start", type=int, default=1, help="controller --slow-start-batch")
    parser.add_argument(
        "--replicas-per-side",
        type=int,
        default=1,
        help="intake processes (queue group) and, to compare like with like, echo processes",
    )
    parser.add_argument("--intake-only", action="store_true", help="no controllers (no scale-up)")
    parser.add_argument("--nodes", type=int, default=0, help="hollow nodes (+ scheduler)")
    asyncio.run(main(parser.parse_args()))
