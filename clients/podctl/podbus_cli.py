"""`podbus`: the operator's entry point.

`podbus up` is the embedded default: it starts nats-server (JetStream) and
redis-server (AOF) under the user's state directory unless NATS_URL /
REDIS_URL point at running ones, then every podbus service as its own
process (`python -m services.<name>`), in the foreground, and stops all of
them on Ctrl-C, leaving nothing behind. `podbus <service> ...` runs one
service in the foreground (what compose and systemd call).

Clients never import services (the layer contract): services are started as
processes, by module name.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from servicekit.embedded import NatsServer, RedisServer, ServerError

SERVICES = ["workload_controller", "scheduler", "node_agent", "prober"]
# Not NATS's and Redis's standard ports: a machine may run those already.
DEFAULT_NATS_PORT = 14222
DEFAULT_REDIS_PORT = 16379


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "podbus"


def service_available(name: str) -> bool:
    return importlib.util.find_spec(f"services.{name}.__main__") is not None


def _say(msg: str) -> None:
    print(f"podbus: {msg}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    data = Path(args.data_dir) if args.data_dir else state_dir()
    data.mkdir(parents=True, exist_ok=True)
    servers: list[NatsServer | RedisServer] = []
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = dict(os.environ)
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
        (data / "endpoints.env").write_text(f"NATS_URL={nats_url}\nREDIS_URL={redis_url}\n")
        for name in SERVICES:
            if not service_available(name):
                _say(f"{name.replace('_', '-')}: not built yet in this version, skipped")
                continue
            extra: list[str] = []
            if name == "node_agent" and args.nodes:
                extra = ["--runtime", "simulated", "--nodes", str(args.nodes)]
            proc = subprocess.Popen([sys.executable, "-m", f"services.{name}", *extra], env=env)
            procs.append((name, proc))
            _say(f"{name.replace('_', '-')} started (pid {proc.pid})")
        _say("running; Ctrl-C stops everything")
        if args.exit_after is not None:
            time.sleep(args.exit_after)
            return 0
        while True:
            for name, proc in procs:
                if proc.poll() is not None:
                    _say(f"{name} exited with {proc.returncode}; stopping")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    except ServerError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in reversed(servers):
            server.stop()
        if servers or procs:
            _say("stopped; nothing left running")


def cmd_service(args: argparse.Namespace, rest: list[str]) -> int:
    module = f"services.{args.command.replace('-', '_')}"
    if not service_available(args.command.replace("-", "_")):
        _say(f"{args.command}: not built yet in this version")
        return 2
    return subprocess.call([sys.executable, "-m", module, *rest])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podbus", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the embedded default: servers, every service, one node")
    up.add_argument("--demo", action="store_true", help="apply examples/ and show them running")
    up.add_argument("--nodes", type=int, default=0, help="add N hollow (simulated) nodes")
    up.add_argument("--data-dir", help="where nats and redis keep data (default: the state dir)")
    up.add_argument("--nats-port", type=int, default=DEFAULT_NATS_PORT)
    up.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT)
    up.add_argument("--exit-after", type=float, default=None, help=argparse.SUPPRESS)
    for name in SERVICES:
        sub.add_parser(
            name.replace("_", "-"), help=f"run the {name.replace('_', '-')} service", add_help=False
        )
    args, rest = parser.parse_known_args(argv)
    if args.command == "up":
        return cmd_up(args)
    return cmd_service(args, rest)


if __name__ == "__main__":
    sys.exit(main())
