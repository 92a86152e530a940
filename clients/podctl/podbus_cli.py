"""`podbus`: the operator's entry point.

`podbus up` is the embedded default: it starts nats-server (JetStream) and
redis-server (AOF) under the user's state directory unless NATS_URL /
REDIS_URL point at running ones, then every podbus service as its own
process (`python -m services.<name>`): the workload-controller, the
scheduler, one node-agent with its prober beside it (the oci runtime when
running as root with runc present and the oci runtime built, else the
simulated one, said plainly), and with `--nodes N` a second node-agent
holding N hollow nodes. It stays in the foreground with a live view of
services, nodes and pods (a redrawn screen on a terminal, one line per
change otherwise); services log to files under the state directory.
Ctrl-C (or SIGTERM) stops the services, then the servers, and leaves
nothing behind. `--demo` applies examples/ and reports as they come up.

`podbus <service> ...` runs one service in the foreground (what compose and
systemd call); `podbus image ...` runs the node-agent's image tool.

Clients never import services (the layer contract): services are started as
processes, by module name.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from podmodel.codec import to_builtins
from podmodel.manifest import load_manifest_files
from servicekit.bus import BusError
from servicekit.embedded import NatsServer, RedisServer, ServerError

from clients.podctl import connection
from clients.podctl.client import ConnectError, Obj, PodbusClient, apply_manifest
from clients.podctl.kinds import resource
from clients.podctl.live_view import ServiceState, changes, demo_progress, screen

SERVICES = ["workload_controller", "scheduler", "node_agent", "prober"]
# Not NATS's and Redis's standard ports: a machine may run those already.
DEFAULT_NATS_PORT = 14222
DEFAULT_REDIS_PORT = 16379
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
VIEW_INTERVAL_S = 1.0
OCI_FALLBACK_WINDOW_S = 10.0


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "podbus"


def service_available(name: str) -> bool:
    return importlib.util.find_spec(f"services.{name}.__main__") is not None


def module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _services_dir() -> Path | None:
    spec = importlib.util.find_spec("services")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def oci_runtime_built() -> bool:
    """The node-agent's oci runtime is present (looked up on disk, not imported)."""
    base = _services_dir()
    if base is None:
        return False
    agent = base / "node_agent"
    return (agent / "oci").is_dir() or (agent / "runtime_oci.py").is_file()


def choose_runtime(
    requested: str, is_root: bool, runc: str | None, oci_built: bool
) -> tuple[str, str]:
    """(runtime, the sentence that says why). Pure."""
    if requested == "simulated":
        return "simulated", "runtime simulated (asked for): containers do not really run"
    missing = []
    if not is_root:
        missing.append("not running as root")
    if not runc:
        missing.append("runc not found")
    if not oci_built:
        missing.append("the oci runtime is not built in this version")
    if not missing:
        return "oci", f"runtime oci: real containers through {runc}"
    if requested == "oci":
        return "oci", "runtime oci (asked for) although " + ", ".join(missing)
    return "simulated", (
        "runtime simulated: containers do not really run (" + ", ".join(missing) + ")"
    )


def _say(msg: str) -> None:
    print(f"podbus: {msg}", flush=True)


@dataclass
class Proc:
    """One service process podbus up started."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started: float = field(default_factory=time.time)
    detail: str = ""


class Supervisor:
    """Starts services as processes (own session: a terminal's Ctrl-C
    reaches podbus, which stops them in order) and stops every one."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, module: str, extra: list[str], detail: str = "") -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        argv = [sys.executable, "-m", module, *extra]
        popen = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc = Proc(name, argv, log_path, popen, detail=detail)
        self.procs.append(proc)
        _say(f"{name} started (pid {popen.pid}), log {log_path}")
        return proc

    def replace(self, old: Proc, extra: list[str], detail: str) -> Proc:
        self.procs.remove(old)
        module = old.argv[2]
        return self.start(old.name, module, extra, detail)

    def stop(self, timeout: float = 15.0) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{proc.name} did not stop within {timeout:g}s; killing it")
                proc.popen.kill()
                proc.popen.wait()
        for log in self._logs:
            log.close()

    def states(self) -> list[ServiceState]:
        return [
            ServiceState(
                name=p.name,
                pid=p.popen.pid,
                running=p.popen.poll() is None,
                started=p.started,
                exit_code=p.popen.returncode,
                detail=p.detail,
            )
            for p in self.procs
        ]


def _node_agent_args(args: argparse.Namespace, runtime: str) -> list[str]:
    extra = ["--name", args.node_name, "--runtime", runtime]
    if runtime == "oci":
        extra += ["--state-dir", str(Path(args.data_dir or state_dir()) / "node")]
        if args.bridge:
            extra += ["--bridge", args.bridge]
        if args.pod_cidr:
            extra += ["--pod-cidr", args.pod_cidr]
    if args.static_pod_dir:
        extra += ["--static-pod-dir", args.static_pod_dir]
    return extra


def start_services(sup: Supervisor, args: argparse.Namespace) -> dict[str, Any]:
    """Every service that exists in this version; returns what the view needs to know."""
    info: dict[str, Any] = {"runtime": "simulated", "node_agent": None}
    runc = shutil.which("runc")
    runtime, why = choose_runtime(args.runtime, os.geteuid() == 0, runc, oci_runtime_built())
    info["runtime"] = runtime
    info["why"] = why
    for name in SERVICES:
        label = name.replace("_", "-")
        if not service_available(name):
            _say(f"{label}: not built yet in this version, skipped")
            continue
        if name == "node_agent":
            _say(f"node {args.node_name}: {why}")
            info["node_agent"] = sup.start(
                label,
                "services.node_agent",
                _node_agent_args(args, runtime),
                detail=f"node {args.node_name}, {runtime}",
            )
            if args.nodes:
                sup.start(
                    "hollow-nodes",
                    "services.node_agent",
                    [
                        "--runtime",
                        "simulated",
                        "--nodes",
                        str(args.nodes),
                        "--node-prefix",
                        "hollow",
                    ],
                    detail=f"{args.nodes} hollow nodes",
                )
        elif name == "prober":
            sup.start(
                label,
                "services.prober",
                ["--node", args.node_name],
                detail=f"node {args.node_name}",
            )
        else:
            sup.start(label, f"services.{name}", [])
    return info


# ------------------------------------------------------------------ the foreground loop


async def _apply_demo(client: PodbusClient, deadline: float) -> list[tuple[str, str, str]]:
    """Apply examples/ (waiting for the API to answer); returns (kind, ns, name) applied."""
    result = load_manifest_files([str(EXAMPLES_DIR)])
    for w in result.warnings:
        _say(f"demo: warning: {w}")
    for e in result.errors:
        _say(f"demo: error: {e}")
    applied: list[tuple[str, str, str]] = []
    for obj in result.objects:
        raw: Obj = to_builtins(obj)
        meta = raw.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        ref = resource(obj.kind).ref(meta["name"])
        verb = ""
        while True:
            try:
                verb, _warnings, _name = await apply_manifest(
                    client, raw, obj.kind, meta["namespace"], meta["name"]
                )
                break
            except BusError as exc:
                if (
                    exc.reason not in ("ServiceUnavailable", "Timeout")
                    or time.monotonic() > deadline
                ):
                    _say(f"demo: {ref}: {exc}")
                    break
                await asyncio.sleep(0.2)
        if not verb:
            continue
        _say(f"demo: {ref} {verb}")
        applied.append((obj.kind, meta.get("namespace") or "default", meta["name"]))
    return applied


async def _list_quiet(client: PodbusClient, kind: str) -> list[Obj] | None:
    try:
        return await client.list(kind, None)
    except BusError:
        return None


async def foreground(
    sup: Supervisor,
    args: argparse.Namespace,
    nats_url: str,
    redis_url: str,
    info: dict[str, Any],
) -> int:
    """The live view until Ctrl-C; non-zero if a service dies."""
    tty = sys.stdout.isatty() and not args.plain
    conn = connection.resolve(server=nats_url, env=os.environ)
    started = time.monotonic()
    header = (
        f"podbus up · NATS {nats_url} · Redis {redis_url} · Ctrl-C stops everything\n"
        f"node {args.node_name}: {info.get('why', info['runtime'])}"
    )
    try:
        client_cm = PodbusClient.connect(conn)
        client = await client_cm.__aenter__()
    except ConnectError as exc:
        _say(f"error: {exc}")
        return 1
    try:
        demo: list[tuple[str, str, str]] = []
        if args.demo:
            if not EXAMPLES_DIR.is_dir():
                _say(f"demo: {EXAMPLES_DIR} not found; nothing to apply")
            else:
                _say(f"demo: applying {EXAMPLES_DIR}")
                demo = await _apply_demo(client, time.monotonic() + 60)
        previous: dict[str, str] = {}
        demo_said = ""
        nodes: list[Obj] = []
        pods: list[Obj] = []
        while True:
            for proc in list(sup.procs):
                code = proc.popen.poll()
                if code is None:
                    continue
                if (
                    proc is info.get("node_agent")
                    and info["runtime"] == "oci"
                    and args.runtime == "auto"
                    and time.time() - proc.started < OCI_FALLBACK_WINDOW_S
                ):
                    _say(
                        f"node-agent refused the oci runtime (exit {code}, see {proc.log_path}); "
                        "runtime simulated: containers do not really run"
                    )
                    info["runtime"] = "simulated"
                    info["why"] = "runtime simulated: the node-agent refused the oci runtime"
                    info["node_agent"] = sup.replace(
                        proc,
                        _node_agent_args(args, "simulated"),
                        f"node {args.node_name}, simulated",
                    )
                    continue
                _say(f"{proc.name} exited with {code} (log {proc.log_path}); stopping")
                return 1
            got_nodes = await _list_quiet(client, "Node")
            got_pods = await _list_quiet(client, "Pod")
            nodes = got_nodes if got_nodes is not None else nodes
            pods = got_pods if got_pods is not None else pods
            now = time.time()
            footer = ""
            if demo:
                objs = []
                for kind, ns, name in demo:
                    try:
                        obj = await client.get(kind, ns, name)
                    except BusError:
                        obj = None
                    if obj is not None:
                        objs.append(obj)
                done, waiting = demo_progress(objs)
                if waiting:
                    footer = (
                        f"demo: {len(done)}/{len(done) + len(waiting)} up; waiting for "
                        + ", ".join(waiting)
                    )
                else:
                    footer = "demo: all examples are up: " + ", ".join(done)
                    footer += " (try: podctl get pods -o wide, podctl describe pod init-demo)"
            if tty:
                sys.stdout.write(
                    "\x1b[H\x1b[2J" + screen(header, sup.states(), nodes, pods, now, footer)
                )
                sys.stdout.flush()
            else:
                lines, previous = changes(previous, nodes, pods, now)
                for line in lines:
                    _say(line)
                if footer and footer != demo_said:
                    demo_said = footer
                    _say(footer)
            if args.exit_after is not None and time.monotonic() - started >= args.exit_after:
                return 0
            await asyncio.sleep(VIEW_INTERVAL_S)
    finally:
        await client_cm.__aexit__(None, None, None)


def _oci_cleanup(sup: Supervisor) -> None:
    """The oci node-agent leaves its containers running when it stops (a
    restarted agent adopts them); `podbus up` promises nothing is left, so
    its --cleanup removes containers, namespaces, veths, the bridge and mounts."""
    for proc in sup.procs:
        if proc.name != "node-agent" or "oci" not in proc.argv:
            continue
        _say("removing the oci node's containers, network namespaces and mounts")
        result = subprocess.run(
            [*proc.argv, "--cleanup"],
            env=sup.env,
            timeout=120,
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            _say(f"node-agent --cleanup failed ({result.returncode}): {result.stderr.strip()}")


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    data = Path(args.data_dir) if args.data_dir else state_dir()
    data.mkdir(parents=True, exist_ok=True)
    servers: list[NatsServer | RedisServer] = []
    env = dict(os.environ)
    sup = Supervisor(env, data / "logs")
    previous_term = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # Started in the background by a shell, SIGINT arrives ignored: Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        nats_url = os.environ.get("NATS_URL")
        if nats_url:
            _say(f"using NATS at {nats_url}")
        else:
            nats = NatsServer(data / "nats", port=args.nats_port)
            nats.start()
            servers.append(nats)
            nats_url = nats.url
            _say(f"nats-server (JetStream) listening on {nats_url}, data in {nats.data_dir}")
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            _say(f"using Redis at {redis_url}")
        else:
            redis = RedisServer(data / "redis", port=args.redis_port, appendonly=True)
            redis.start()
            servers.append(redis)
            redis_url = redis.url
            _say(f"redis-server (AOF) listening on {redis_url}, data in {redis.data_dir}")
        env.update(NATS_URL=nats_url, REDIS_URL=redis_url)
        # Spans as local files unless an OTLP exporter is configured: `podctl trace POD` reads them.
        if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not env.get("OTEL_TRACES_EXPORTER"):
            env.setdefault("PODBUS_SPANS_DIR", str(data / "spans"))
        (data / "endpoints.env").write_text(f"NATS_URL={nats_url}\nREDIS_URL={redis_url}\n")
        info = start_services(sup, args)
        _say(f"running; podctl finds it through {data / 'endpoints.env'}; Ctrl-C stops everything")
        return asyncio.run(foreground(sup, args, nats_url, redis_url, info))
    except KeyboardInterrupt:
        print(flush=True)
        _say("stopping")
        return 0
    except ServerError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits
        try:
            sup.stop()
            _oci_cleanup(sup)
            for server in reversed(servers):
                server.stop()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)
        if servers or sup.procs:
            _say("stopped; nothing left running")


def cmd_service(args: argparse.Namespace, rest: list[str]) -> int:
    module = f"services.{args.command.replace('-', '_')}"
    if not service_available(args.command.replace("-", "_")):
        _say(f"{args.command}: not built yet in this version")
        return 2
    return subprocess.call([sys.executable, "-m", module, *rest])


IMAGE_CLI = "services.node_agent.oci.image_cli"


def cmd_image(rest: list[str]) -> int:
    """`podbus image ...`: the node-agent's image store tool, as a subprocess."""
    if not module_available(IMAGE_CLI):
        _say("image: the oci image tool is not built in this version")
        return 2
    return subprocess.call([sys.executable, "-m", IMAGE_CLI, *rest])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "image":
        return cmd_image(argv[1:])
    parser = argparse.ArgumentParser(prog="podbus", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the embedded default: servers, every service, one node")
    up.add_argument("--demo", action="store_true", help="apply examples/ and show them running")
    up.add_argument("--nodes", type=int, default=0, help="add N hollow (simulated) nodes")
    up.add_argument(
        "--runtime",
        choices=["auto", "oci", "simulated"],
        default="auto",
        help="the node's runtime (auto: oci when root with runc, else simulated)",
    )
    up.add_argument("--node-name", default=socket.gethostname(), help="the node's name")
    up.add_argument("--static-pod-dir", default="", help="static pod manifests for the node")
    up.add_argument("--bridge", default="", help="oci: the node's bridge (default podbus0)")
    up.add_argument("--pod-cidr", default="", help="oci: pod addresses (default 10.88.0.0/16)")
    up.add_argument("--data-dir", help="where nats and redis keep data (default: the state dir)")
    up.add_argument("--nats-port", type=int, default=DEFAULT_NATS_PORT)
    up.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT)
    up.add_argument("--plain", action="store_true", help="one line per change, even on a terminal")
    up.add_argument("--exit-after", type=float, default=None, help=argparse.SUPPRESS)
    sub.add_parser("image", help="manage the node's image store (see `podbus image --help`)")
    for name in SERVICES:
        sub.add_parser(
            name.replace("_", "-"), help=f"run the {name.replace('_', '-')} service", add_help=False
        )
    args, rest = parser.parse_known_args(argv)
    if args.command == "up":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return cmd_up(args)
    return cmd_service(args, rest)


if __name__ == "__main__":
    sys.exit(main())
