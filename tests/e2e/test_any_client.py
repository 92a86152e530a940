"""Any client can drive podbus: a Python script that imports nothing of
podbus (nats-py and JSON strings) and a Node.js script with the `nats` npm
package apply a Pod and a Deployment to real service processes
(workload-controller, scheduler, a hollow node-agent with two simulated
nodes) on the session's nats-server and redis-server; the Deployment's pods
end up Running."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from podmodel.pod import Pod
from podmodel.workloads import Deployment
from servicekit.store import Store

from tests.conftest import wait_for
from tests.servers import ServerHandle

ROOT = Path(__file__).resolve().parents[2]
PY_CLIENT = ROOT / "clients" / "examples" / "apply_pod.py"
JS_CLIENT_DIR = ROOT / "clients" / "examples" / "js"
PODBUS_MODULES = ("podmodel", "servicekit", "services", "clients")


@pytest.fixture(scope="module")
def services(nats_server: ServerHandle, redis_server: ServerHandle) -> Iterator[tuple[str, str]]:
    """The services as processes, as a deployment runs them."""
    nats_server.start()
    redis_server.start()
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_", "OTEL_"))}
    env["PODBUS_LOG_LEVEL"] = "WARNING"
    urls = ["--nats-url", nats_server.url, "--redis-url", redis_server.url]
    commands = [
        ["-m", "services.workload_controller", *urls, "--leader-ttl", "3"],
        ["-m", "services.scheduler", *urls, "--lease-ttl", "3"],
        ["-m", "services.node_agent", "--runtime", "simulated", "--nodes", "2", *urls],
    ]
    procs = [
        subprocess.Popen([sys.executable, *cmd], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        for cmd in commands
    ]
    try:
        yield nats_server.url, redis_server.url
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
async def store(services: tuple[str, str]) -> AsyncIterator[Store]:
    s = await Store.connect(services[1])
    yield s
    await s.close()


async def deployment_running(store: Store, name: str, replicas: int) -> bool:
    d = await store.get(Deployment, "default", name)
    if d is None or d.status.available_replicas != replicas:
        return False
    pods, _ = await store.list(Pod, "default")
    mine = [p for p in pods if p.metadata.name.startswith(name + "-")]
    return len(mine) == replicas and all(p.status.phase == "Running" for p in mine)


async def pod_running(store: Store, name: str) -> bool:
    pod = await store.get(Pod, "default", name)
    return pod is not None and pod.status.phase == "Running"


async def run(*cmd: str, cwd: Path | None = None, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def test_python_script_without_podbus_imports_applies_pod_and_deployment(
    services: tuple[str, str], store: Store
) -> None:
    text = PY_CLIENT.read_text()
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if any(m in line for m in PODBUS_MODULES)]
    nats_url, _ = services

    async def applied() -> tuple[int, str, str] | None:
        result = await run(sys.executable, str(PY_CLIENT), nats_url)
        return result if result[0] == 0 else None  # the intake may still be starting

    _code, out, err = await wait_for(applied, timeout=30, interval=0.5, message="apply_pod.py")
    assert out.splitlines() in (
        ["Pod/hello created", "Deployment/web created"],
        ["Pod/hello configured", "Deployment/web configured"],
    ), (out, err)
    await wait_for(lambda: pod_running(store, "hello"), timeout=30, message="hello Running")
    await wait_for(
        lambda: deployment_running(store, "web", 2), timeout=30, message="web 2/2 Running"
    )


def _npm_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "podbus" / "e2e-js-client"


async def _prepare_js_client() -> Path:
    """A copy of clients/examples/js with its node_modules, installed once
    into a cache directory; skips (with the reason) without node, npm or a
    registry that answers."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the nats.js client test needs them")
    target = _npm_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in ("apply.mjs", "package.json"):
        shutil.copyfile(JS_CLIENT_DIR / name, target / name)
    if (target / "node_modules" / "nats" / "package.json").exists():
        return target
    try:
        code, _out, err = await run("npm", "view", "nats", "version", cwd=target, timeout=30)
    except TimeoutError:
        pytest.skip("the npm registry did not answer within 30 s")
    if code != 0:
        pytest.skip(f"the npm registry did not answer: {err.strip()[-300:]}")
    code, _out, err = await run(
        "npm", "install", "--no-audit", "--no-fund", "--omit=dev", cwd=target, timeout=180
    )
    if code != 0:
        pytest.skip(f"npm install failed: {err.strip()[-300:]}")
    return target


async def test_nats_js_client_applies_pod_and_deployment(
    services: tuple[str, str], store: Store
) -> None:
    client_dir = await _prepare_js_client()
    nats_url, _ = services

    async def applied() -> tuple[int, str, str] | None:
        result = await run("node", "apply.mjs", nats_url, cwd=client_dir)
        return result if result[0] == 0 else None

    _code, out, err = await wait_for(applied, timeout=30, interval=0.5, message="apply.mjs")
    assert out.splitlines() in (
        ["Pod/hello-js created", "Deployment/web-js created"],
        ["Pod/hello-js configured", "Deployment/web-js configured"],
    ), (out, err)
    await wait_for(lambda: pod_running(store, "hello-js"), timeout=30, message="hello-js Running")
    await wait_for(
        lambda: deployment_running(store, "web-js", 2), timeout=30, message="web-js 2/2 Running"
    )
