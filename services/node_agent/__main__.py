"""`python -m services.node_agent`: run one node-agent, or N hollow nodes.

    python -m services.node_agent --name n1 --runtime simulated
    python -m services.node_agent --runtime simulated --nodes 100 --node-prefix hollow

NATS and Redis come from --nats-url / --redis-url (default: the NATS_URL
and REDIS_URL variables). SIGTERM or SIGINT stops cleanly: informers and
workers end, pending statuses are written, connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any

import nats
from servicekit.runner import nats_connect_options, use_pidfd_child_watcher
from servicekit.store import Store
from servicekit.telemetry import setup_tracing, shutdown_tracing

from services.node_agent.health import serve_health
from services.node_agent.hollow import EngineConfig, SimulatedNodes, hollow_node_configs
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.node import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_PODS,
    NodeConfig,
    parse_labels,
    parse_taints,
)
from services.node_agent.oci.node import MissingPrerequisites, OciNode
from services.node_agent.oci.node import cleanup as oci_cleanup
from services.node_agent.oci.runtime import OciConfig

log = logging.getLogger("services.node_agent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.node_agent", description=__doc__)
    p.add_argument("--name", default=socket.gethostname(), help="node name (one node)")
    p.add_argument("--runtime", choices=["simulated", "oci"], default="simulated")
    p.add_argument("--nodes", type=int, default=0, help="hollow nodes in this process")
    p.add_argument("--node-prefix", default="hollow", help="hollow nodes are <prefix>-<i>")
    p.add_argument("--labels", default="", help="k=v,k2=v2")
    p.add_argument("--taints", default="", help="key=value:Effect,...")
    p.add_argument("--max-pods", type=int, default=DEFAULT_MAX_PODS)
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="8Gi")
    p.add_argument("--host-ip", default="127.0.0.1")
    p.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_SECONDS)
    p.add_argument("--backoff-initial", type=float, default=10.0)
    p.add_argument("--backoff-cap", type=float, default=300.0)
    p.add_argument("--backoff-reset", type=float, default=600.0)
    p.add_argument(
        "--probes",
        choices=["auto", "runtime", "prober"],
        default="auto",
        help="probe results from the runtime (simulated annotations) or a prober service "
        "(`python -m services.prober --node NAME`); auto: runtime for simulated, prober for oci",
    )
    p.add_argument("--static-pod-dir", default="", help="static pod manifests (one node only)")
    p.add_argument("--static-rescan-seconds", type=float, default=20.0)
    p.add_argument("--events", choices=["on", "off"], default="on", help="write pod events")
    oci = p.add_argument_group("oci runtime")
    oci.add_argument("--pod-cidr", default="10.88.0.0/16", help="pod addresses of this node")
    oci.add_argument("--bridge", default="podbus0", help="the node bridge the pods' veths join")
    oci.add_argument(
        "--no-masquerade",
        action="store_true",
        help="do not NAT pod traffic leaving the pod CIDR (pods then reach only the node "
        "and each other, unless the network routes the pod CIDR)",
    )
    oci.add_argument(
        "--state-dir",
        default="/var/lib/podbus/node",
        help="what stays on disk: IP allocations, emptyDirs, writable layers, logs",
    )
    oci.add_argument(
        "--run-dir",
        default="/run/podbus/node",
        help="runc bundles and pod files; on a tmpfs (one of its own is mounted there "
        "when the place is on disk)",
    )
    oci.add_argument("--runc-root", default="", help="runc's state (default: <run-dir>/runc)")
    oci.add_argument(
        "--seccomp-root",
        default="/var/lib/podbus/seccomp",
        help="where seccompProfile.localhostProfile paths point (kubelet: <root-dir>/seccomp)",
    )
    oci.add_argument(
        "--image-root", default=os.environ.get("PODBUS_IMAGE_ROOT", "/var/lib/podbus/images")
    )
    oci.add_argument(
        "--parallel-starts",
        type=int,
        default=0,
        help="containers started (runc run) at once; 0: twice the CPUs",
    )
    oci.add_argument("--pids-limit", type=int, default=0, help="pids cgroup limit per container")
    oci.add_argument(
        "--cleanup",
        action="store_true",
        help="remove everything a crashed oci agent left, then exit",
    )
    p.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def cancel_until_done(task: asyncio.Task[Any], every_s: float = 1.0) -> None:
    """Stop the agent for good: cancel again every second until it ends, as
    a cancellation that lands inside a library call that swallows it
    (redis-py has done so) would otherwise leave the agent running."""
    if task.done():
        return
    task.cancel()
    asyncio.get_running_loop().call_later(every_s, cancel_until_done, task, every_s)


async def connect_nats(url: str) -> nats.NATS:
    """Unlimited reconnects; credentials from NATS_CREDS / NATS_TOKEN /
    NATS_USER+NATS_PASSWORD as every other service takes them."""
    return await nats.connect(
        url.split(","),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        **nats_connect_options(),
    )


def oci_config(args: argparse.Namespace) -> OciConfig:
    return OciConfig(
        state_dir=args.state_dir,
        run_dir=args.run_dir,
        seccomp_root=args.seccomp_root,
        runc_root=args.runc_root,
        image_root=args.image_root,
        bridge=args.bridge,
        pod_cidr=args.pod_cidr,
        host_ip=args.host_ip,
        node_name=args.name,
        pids_limit=args.pids_limit,
        parallel_starts=args.parallel_starts,
        masquerade=not args.no_masquerade,
    )


async def serve(args: argparse.Namespace) -> int:
    if args.runtime == "oci" or args.cleanup:
        try:
            if args.cleanup:
                for item in await oci_cleanup(oci_config(args)):
                    print(f"removed {item}")
                return 0
            if args.nodes:
                log.error("--nodes (hollow nodes) needs --runtime simulated")
                return 2
            return await serve_oci(args)
        except MissingPrerequisites as exc:
            log.error("%s", exc)
            return 2
    template = NodeConfig(
        name=args.name,
        labels=parse_labels(args.labels),
        taints=parse_taints(args.taints),
        max_pods=args.max_pods,
        cpu=args.cpu,
        memory=args.memory,
        host_ip=args.host_ip,
        runtime=args.runtime,
    )
    configs = (
        hollow_node_configs(args.node_prefix, args.nodes, template) if args.nodes else [template]
    )
    probes = args.probes
    if probes == "auto":
        probes = "runtime" if args.runtime == "simulated" else "prober"
    engine = EngineConfig(
        lease_seconds=args.lease_seconds,
        backoff=BackoffConfig(args.backoff_initial, args.backoff_cap, args.backoff_reset),
        probes=probes,
        events=args.events == "on",
        static_pod_dir=args.static_pod_dir,
        static_rescan_s=args.static_rescan_seconds,
    )
    nc = await connect_nats(args.nats_url)
    store = await Store.connect(args.redis_url, publish=nc.publish)
    nodes = SimulatedNodes(configs, store=store, nc=nc, engine=engine)
    await serve_health(
        nc,
        configs[0].name if len(configs) == 1 else args.name,
        lambda: {"runtime": "simulated", "nodes": len(configs)},
    )
    main = asyncio.create_task(nodes.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, cancel_until_done, main)
    log.info("node-agent: %d simulated node(s): %s", len(configs), configs[0].name)
    try:
        await main
    except asyncio.CancelledError:
        log.info("node-agent: stopping")
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        await store.close()
    return 0


async def serve_oci(args: argparse.Namespace) -> int:
    """One node running real containers through runc."""
    use_pidfd_child_watcher()  # a shim per container: no thread per shim
    node = NodeConfig(
        name=args.name,
        labels=parse_labels(args.labels),
        taints=parse_taints(args.taints),
        max_pods=args.max_pods,
        cpu=args.cpu,
        memory=args.memory,
        host_ip=args.host_ip,
        runtime="oci",
    )
    nc = await connect_nats(args.nats_url)
    store = await Store.connect(args.redis_url, publish=nc.publish)
    try:
        oci_node = OciNode(
            node,
            oci_config(args),
            store=store,
            nc=nc,
            probes="runtime" if args.probes == "runtime" else "prober",
            backoff=BackoffConfig(args.backoff_initial, args.backoff_cap, args.backoff_reset),
            lease_seconds=args.lease_seconds,
            events=args.events == "on",
            static_pod_dir=args.static_pod_dir,
            static_rescan_s=args.static_rescan_seconds,
        )
        await serve_health(nc, args.name, lambda: {"runtime": "oci", "nodes": 1})
        main = asyncio.create_task(oci_node.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, cancel_until_done, main)
        log.info("node-agent: oci node %s (pod CIDR %s)", args.name, args.pod_cidr)
        try:
            await main
        except asyncio.CancelledError:
            log.info("node-agent: stopping (containers keep running; --cleanup removes them)")
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Tracing from the OTEL_* variables (off without an exporter).
    setup_tracing(
        "node-agent", f"{args.name if not args.nodes else args.node_prefix}-{os.getpid()}"
    )
    try:
        return asyncio.run(serve(args))
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    sys.exit(main())
