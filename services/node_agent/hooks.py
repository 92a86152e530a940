"""Running a container's postStart hook, as the kubelet's handler runner
(pkg/kubelet/lifecycle/handlers.go) does for any runtime:

- exec: the command through `Runtime.exec`; exit 0 is success, else the
  failure message is the command's output;
- httpGet: a GET to host (default: the pod IP) and port (number or the
  container port's name), path; 200-399 is success;
- sleep: waits that many seconds;
- tcpSocket: deprecated for hooks; kubelet accepts it and does nothing.

A runtime may take hooks over with an optional method
`run_post_start(pod, container, record, handler) -> str | None` (None: success,
else the failure message): the simulated runtime does, playing its
`post-start-duration` / `post-start-fails` annotations.

The pod worker calls `run_post_start` right after a successful start and
waits for it (the kubelet blocks the pod's sync the same way), then on a
failure records FailedPostStartHook, kills the container and lets it wait
with PostStartHookError until the restart policy restarts it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from podmodel.pod import Container, ContainerPort, LifecycleHandler, Pod

from services.node_agent.logic.records import ContainerRecord
from services.node_agent.runtime import Runtime

#: kubelet gives hooks no own timeout but the grace period; a hung httpGet
#: must not hold the worker forever
HTTP_HOOK_TIMEOUT_SECONDS = 10.0


class HookError(Exception):
    """A hook that failed; the message says why (kubelet's wording)."""


def _port(port: int | str, ports: list[ContainerPort]) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for p in ports:
        if p.name == port:
            return p.container_port
    raise HookError(f"couldn't find port: {port} in {[p.name for p in ports]}")


async def _http_get(host: str, port: int, path: str, headers: list[Any]) -> None:
    async with asyncio.timeout(HTTP_HOOK_TIMEOUT_SECONDS):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            lines += [f"{h.name}: {h.value}" for h in headers]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
    parts = status_line.split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if not 200 <= code < 400:
        raise HookError(f"HTTP lifecycle hook ({path}) for Container failed, statuscode: {code}")


async def run_handler(
    runtime: Runtime,
    pod: Pod,
    container: Container,
    record: ContainerRecord,
    handler: LifecycleHandler,
    pod_ip: str,
) -> str | None:
    """Run one lifecycle handler; None on success, else the failure message."""
    own = getattr(runtime, "run_post_start", None)
    if own is not None:
        result: str | None = await own(pod, container, record, handler)
        return result
    try:
        if handler.exec is not None:
            out = await runtime.exec(pod, container.name, list(handler.exec.command))
            if out.exit_code != 0:
                output = (out.stdout + out.stderr).decode(errors="replace")
                return (
                    f"Exec lifecycle hook ({handler.exec.command}) for Container "
                    f'"{container.name}" in Pod "{pod.metadata.name}_{pod.metadata.namespace}'
                    f'({pod.metadata.uid})" failed - error: command exited with '
                    f"{out.exit_code}, message: {output!r}"
                )
        elif handler.http_get is not None:
            action = handler.http_get
            host = action.host or pod_ip
            await _http_get(
                host, _port(action.port, container.ports), action.path, action.http_headers
            )
        elif handler.sleep is not None:
            await asyncio.sleep(max(handler.sleep.seconds, 0))
    except HookError as exc:
        return str(exc)
    except (OSError, TimeoutError) as exc:
        return f"lifecycle hook for Container {container.name!r} failed: {exc}"
    return None
