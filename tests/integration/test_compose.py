"""deploy/compose, checked without a Docker engine: the compose file against
the compose-spec JSON schema and against what podbus needs of it; every
podbus service's command started as a plain process with the compose file's
environment (NATS, Redis and the OTLP endpoint pointed at test servers) until
its own health check command passes; the image's Python entry points
importable; the entrypoint naming the instance after the host."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import wait_for
from tests.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
SCHEMA_FILE = COMPOSE_DIR / "compose-spec.schema.json"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution (`${VAR}`, `${VAR:-default}`, `$$`)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            found = env.get(m.group("name"))
            return found if found else (m.group("default") or "")

        return _VARIABLE.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())  # merges <<: anchors
    return doc


def podbus_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if str(svc.get("image", "")).startswith("podbus")
    }


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    doc = compose()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    # The schema does reject what compose rejects.
    broken = json.loads(json.dumps(doc))
    broken["services"]["scheduler"]["restart_policy"] = "always"
    broken["services"]["nats"]["ports"] = "4222"
    assert len(list(validator.iter_errors(broken))) == 2


def test_compose_has_what_podbus_needs() -> None:
    doc = compose()
    services = doc["services"]
    assert "--jetstream" in services["nats"]["command"]
    assert any(v.endswith(":/data") for v in services["nats"]["volumes"])
    assert services["redis"]["command"][1:3] == ["--appendonly", "yes"]
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert set(doc["volumes"]) >= {"nats-data", "redis-data"}
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    jaeger_ports = {p.split(":")[0] for p in services["jaeger"]["ports"]}
    assert jaeger_ports == {"4317", "4318", "16686"}

    ours = podbus_services(doc)
    assert set(ours) == {
        "scheduler",
        "workload-controller",
        "node-agent-1",
        "node-agent-2",
        "prober-1",
        "prober-2",
    }
    for name, svc in ours.items():
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "servicekit.healthcheck"]
        env = svc["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
        assert env["NATS_URL"] == "nats://nats:4222" and env["REDIS_URL"].startswith(
            "redis://redis"
        )

    agents = {n: s for n, s in ours.items() if n.startswith("node-agent")}
    names = {s["command"][s["command"].index("--name") + 1] for s in agents.values()}
    cidrs = {s["command"][s["command"].index("--pod-cidr") + 1] for s in agents.values()}
    assert len(names) == len(cidrs) == 2
    for name, agent in agents.items():
        assert agent["privileged"] is True and agent["build"]["target"] == "podbus-node"
        node = agent["command"][agent["command"].index("--name") + 1]
        assert agent["environment"]["PODBUS_NODE_NAME"] == node
        prober = ours[name.replace("node-agent", "prober")]
        assert prober["network_mode"] == f"service:{name}"
        assert prober["command"][prober["command"].index("--node") + 1] == node


def test_dockerfile_builds_one_image_with_a_node_stage() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)
    assert stages == [("python:3.11-slim", "podbus"), ("podbus", "podbus-node")]
    node_stage = text.split("AS podbus-node", 1)[1]
    assert "runc" in node_stage and "busybox-static" in node_stage
    assert "pip install ." in text


def test_image_python_entry_points_are_importable() -> None:
    doc = compose()
    modules = {"servicekit.healthcheck"}
    for svc in podbus_services(doc).values():
        command = svc["command"]
        assert command[:2] == ["python", "-m"]
        modules.add(command[2])
    dockerfile_imports = re.search(r'python -c "import ([^"]+)"', DOCKERFILE.read_text())
    assert dockerfile_imports is not None
    modules |= {m.strip() for m in dockerfile_imports.group(1).split(",")}
    for module in sorted(modules):
        assert importlib.util.find_spec(module) is not None, module
        importlib.import_module(module)
    # What `pip install .` puts in the image holds every one of them.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packaged = {
        Path(p).name for p in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    assert {m.split(".")[0] for m in modules} <= packaged
    for script in project["project"]["scripts"].values():
        module, _, func = script.partition(":")
        assert callable(getattr(importlib.import_module(module), func))


def test_entrypoint_names_the_instance_after_the_host() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PODBUS_INSTANCE"}
    out = subprocess.run(
        ["sh", str(COMPOSE_DIR / "entrypoint.sh"), "sh", "-c", 'echo "$PODBUS_INSTANCE"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()
    assert (
        out
        == subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    )
    env["PODBUS_INSTANCE"] = "given"
    given = subprocess.run(
        ["sh", str(COMPOSE_DIR / "entrypoint.sh"), "sh", "-c", 'echo "$PODBUS_INSTANCE"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()
    assert given == "given"


# ------------------------------------------------------------ processes


def python_command(command: list[str]) -> list[str]:
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


async def test_every_service_command_starts_and_answers_its_health_check(
    nats_url: str, redis_url: str, receiver: OtlpReceiver
) -> None:
    doc = compose()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_", "OTEL_"))}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    envs: dict[str, dict[str, str]] = {}
    try:
        for name, svc in podbus_services(doc).items():
            # The compose defaults, but simulated nodes: as plain processes
            # on one host, two oci agents would share the host's network
            # namespace and bridge, which compose gives each its own of.
            svc = interpolate(svc, {"PODBUS_RUNTIME": "simulated"})
            env = {**base, **{k: str(v) for k, v in svc["environment"].items()}}
            env.update(
                NATS_URL=nats_url,
                REDIS_URL=redis_url,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
                # What the entrypoint does: the container's host name.
                PODBUS_INSTANCE=svc.get("hostname", name),
                PODBUS_LOG_LEVEL="WARNING",
            )
            envs[name] = env
            procs[name] = subprocess.Popen(  # noqa: ASYNC220 (starting is instant)
                python_command(svc["command"]),
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )

        for name, svc in podbus_services(doc).items():
            test = svc["healthcheck"]["test"]
            assert test[0] == "CMD"

            async def healthy(name: str = name, test: list[str] = test) -> str | None:
                if procs[name].poll() is not None:
                    err = procs[name].stderr.read().decode() if procs[name].stderr else ""
                    raise AssertionError(f"{name} exited {procs[name].returncode}: {err[-2000:]}")
                result = await asyncio.to_thread(
                    subprocess.run,
                    python_command(test[1:]),
                    env=envs[name],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                return result.stdout.strip() if result.returncode == 0 else None

            line = await wait_for(healthy, timeout=60, interval=0.5, message=f"{name} healthy")
            assert line, name
    finally:
        for p in procs.values():
            p.terminate()
        for name, p in procs.items():
            try:
                code = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                code = None
            if p.stderr:
                p.stderr.close()
            assert code in (0, -15), f"{name} stopped with {code}"


async def test_health_check_fails_when_nobody_answers(nats_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_"))}
    env["NATS_URL"] = nats_url
    for args in (["scheduler", "--instance", "nobody"], ["node-agent", "--node", "no-such-node"]):
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "servicekit.healthcheck", *args, "--timeout", "0.5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 1, args
        assert result.stderr.startswith("unhealthy: ")
    env["NATS_URL"] = "nats://127.0.0.1:9"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "servicekit.healthcheck", "prober", "--timeout", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1 and "cannot connect to NATS" in result.stderr


async def test_two_scheduler_replicas_elect_one_leader(nats_url: str, redis_url: str) -> None:
    """`--scale scheduler=2` with the compose command and environment: two
    containers, two host names, one leader (health details say which)."""
    import nats

    svc = interpolate(compose()["services"]["scheduler"], {})
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_", "OTEL_"))}
    env = {**base, **{k: str(v) for k, v in svc["environment"].items()}}
    env.update(NATS_URL=nats_url, REDIS_URL=redis_url, PODBUS_LOG_LEVEL="WARNING")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT")
    instances = ["podbus-scheduler-1", "podbus-scheduler-2"]
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 (starting is instant)
            python_command(svc["command"]),
            env={**env, "PODBUS_INSTANCE": instance},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for instance in instances
    ]
    nc = await nats.connect(nats_url)
    try:

        async def leaders() -> list[bool] | None:
            found = []
            for instance in instances:
                try:
                    msg = await nc.request(f"podbus.health.scheduler.{instance}", b"", timeout=1)
                except Exception:
                    return None
                found.append(bool(json.loads(msg.data)["details"].get("leader")))
            return found if any(found) else None

        found = await wait_for(leaders, timeout=30, interval=0.3, message="a scheduler leader")
        assert sorted(found) == [False, True]
    finally:
        await nc.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
