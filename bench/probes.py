"""Benchmark: one prober against 1,000 local targets, periodSeconds 1.

500 TCP listeners and 500 tiny HTTP servers run in a separate process (so
they do not share the prober's CPU); this process runs the prober's
scheduler and manager for the measured window and prints, one figure a line:
CPU time of this process per probe, share of one core, p50/p99 lag between a
probe's due time and its start, and a reference measured in the same run:
the same number of bare TCP connects in a tight loop (blocking sockets), with
the ratio of the probe cost to it.

Goal (issue 7): under 20 % of one core and p99 lag under 50 ms. The prober
runs on the loop the prober service uses (uvloop when installed;
`--asyncio-loop` for the default one).

    .venv/bin/python bench/probes.py [--seconds 20] [--tcp 500] [--http 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servicekit.runner import uvloop_factory

HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# --------------------------------------------------------------- target side


class _Close(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" in self.buf and self.transport is not None:
            self.transport.write(HTTP_RESPONSE)
            self.transport.close()


def _raise_fd_limit() -> None:
    """1,000 listeners plus their connections exceed the usual soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(tcp: int, http: int) -> None:
    _raise_fd_limit()
    loop = asyncio.get_running_loop()
    tcp_ports: list[int] = []
    http_ports: list[int] = []
    servers = []
    for _ in range(tcp):
        server = await loop.create_server(_Close, "127.0.0.1", 0, backlog=1024)
        servers.append(server)
        tcp_ports.append(server.sockets[0].getsockname()[1])
    for _ in range(http):
        server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=1024)
        servers.append(server)
        http_ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps({"tcp": tcp_ports, "http": http_ports}), flush=True)
    # Serve until the parent closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)


# --------------------------------------------------------------- prober side


def _assignments(tcp_ports: list[int], http_ports: list[int]) -> object:
    from podmodel.pod import HTTPGetAction, Probe, TCPSocketAction
    from podmodel.probing import ProbeAssignment, ProbeAssignmentSet

    started = "2020-01-01T00:00:00Z"
    probes = []
    for i, port in enumerate(tcp_ports):
        probes.append(
            ProbeAssignment(
                pod_uid=f"tcp-{i}",
                namespace="bench",
                pod_name=f"tcp-{i}",
                container_name="app",
                container_id=f"c-tcp-{i}",
                probe_type="readiness",
                probe=Probe(tcp_socket=TCPSocketAction(port=port), period_seconds=1),
                pod_ip="127.0.0.1",
                started_at=started,
            )
        )
    for i, port in enumerate(http_ports):
        probes.append(
            ProbeAssignment(
                pod_uid=f"http-{i}",
                namespace="bench",
                pod_name=f"http-{i}",
                container_name="app",
                container_id=f"c-http-{i}",
                probe_type="readiness",
                probe=Probe(http_get=HTTPGetAction(path="/healthz", port=port), period_seconds=1),
                pod_ip="127.0.0.1",
                started_at=started,
            )
        )
    return ProbeAssignmentSet(node="bench", generation=1, probes=probes)


def _percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _bare_connects(ports: list[int], count: int) -> float:
    """CPU seconds of `count` blocking connect+close in a tight loop."""
    start = time.process_time()
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(("127.0.0.1", ports[i % len(ports)]))
        sock.close()
    return time.process_time() - start


async def _run_prober(
    tcp_ports: list[int], http_ports: list[int], seconds: float, warmup: float, tick: float
) -> dict[str, float]:
    from podmodel.probing import ProbeAssignmentSet, ProbeReport

    from services.prober.manager import ProbeManager
    from services.prober.scheduler import ProbeScheduler

    transitions: list[ProbeReport] = []
    scheduler = ProbeScheduler(max_concurrency=512, tick=tick, max_lag_samples=1_000_000)
    manager = ProbeManager("bench", transitions.append, scheduler=scheduler)
    assignment = _assignments(tcp_ports, http_ports)
    assert isinstance(assignment, ProbeAssignmentSet)
    manager.apply(assignment)
    await asyncio.sleep(warmup)
    scheduler.take_lags()
    runs0, skipped0, failed0 = scheduler.runs, scheduler.skipped, scheduler.failed
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    runs = scheduler.runs - runs0
    lags = scheduler.take_lags()
    failures = sum(
        1
        for key in [(a.pod_uid, a.container_name, a.probe_type) for a in assignment.probes]
        if (state := manager.state(key)) is not None and state.result != "success"
    )
    await manager.close()
    return {
        "cpu": cpu,
        "user": usage.ru_utime - usage0.ru_utime,
        "sys": usage.ru_stime - usage0.ru_stime,
        "wall": wall,
        "runs": runs,
        "skipped": scheduler.skipped - skipped0,
        "job_errors": scheduler.failed - failed0,
        "not_success": failures,
        "p50": _percentile(lags, 0.50),
        "p99": _percentile(lags, 0.99),
        "max": max(lags) if lags else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--tcp", type=int, default=500)
    parser.add_argument("--http", type=int, default=500)
    parser.add_argument("--tick", type=float, default=0.005, help="scheduler tick (s)")
    parser.add_argument("--profile", action="store_true", help="cProfile the prober, print the top")
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="the default asyncio loop, not uvloop"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.tcp, args.http))
        return
    _raise_fd_limit()

    targets = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--tcp", str(args.tcp), "--http", str(args.http)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert targets.stdout is not None
        ports = json.loads(targets.stdout.readline())
        tcp_ports, http_ports = ports["tcp"], ports["http"]
        coro = _run_prober(tcp_ports, http_ports, args.seconds, args.warmup, args.tick)
        # the loop the prober service runs on (uvloop when installed)
        factory = None if args.asyncio_loop else uvloop_factory()
        service_loop = "uvloop" if uvloop_factory() else "asyncio"
        print(
            f"event loop: {'uvloop' if factory else 'asyncio'} (the prober service: {service_loop})"
        )
        with asyncio.Runner(loop_factory=factory) as runner:
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                figures = runner.run(coro)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            else:
                figures = runner.run(coro)
        runs = max(1, int(figures["runs"]))
        per_probe = figures["cpu"] / runs
        reference_count = runs
        reference_cpu = _bare_connects(tcp_ports or http_ports, reference_count)
        per_connect = reference_cpu / reference_count
    finally:
        if targets.stdin is not None:
            targets.stdin.close()
        targets.wait(timeout=10)

    print(
        f"targets: {len(tcp_ports)} tcp + {len(http_ports)} http, periodSeconds 1, tick {args.tick * 1e3:g} ms, "
        f"{figures['wall']:.1f} s measured, pid {os.getpid()}"
    )
    print(f"probe runs: {runs} ({runs / figures['wall']:.0f}/s)")
    print(f"probe runs skipped (overlap or late): {int(figures['skipped'])}")
    print(f"probes not in success at the end: {int(figures['not_success'])}")
    print(f"probe cpu per probe: {per_probe * 1e6:.0f} us")
    print(
        f"probe cpu per probe, user / sys: {figures['user'] / runs * 1e6:.0f} / {figures['sys'] / runs * 1e6:.0f} us"
    )
    print(f"prober core share: {100 * figures['cpu'] / figures['wall']:.1f} %")
    print(f"probe lag p50: {figures['p50'] * 1e3:.2f} ms")
    print(f"probe lag p99: {figures['p99'] * 1e3:.2f} ms")
    print(f"probe lag max: {figures['max'] * 1e3:.2f} ms")
    print(
        f"reference bare tcp connect cpu: {per_connect * 1e6:.0f} us ({reference_count} blocking connects)"
    )
    print(f"ratio probe / bare connect: {per_probe / per_connect:.1f}")


if __name__ == "__main__":
    main()
