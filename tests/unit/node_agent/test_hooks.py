"""The generic postStart handler runner (no runtime hook of its own): exec
through the runtime, httpGet to a local server, sleep."""

from __future__ import annotations

import asyncio

from podmodel.pod import (
    ContainerPort,
    ExecAction,
    HTTPGetAction,
    LifecycleHandler,
    Pod,
    SleepAction,
)

from services.node_agent.hooks import run_handler
from services.node_agent.runtime import ExecResult
from tests.unit.node_agent.builders import container, make_pod, running


class ExecOnly:
    """Just enough of a Runtime for hooks: exec answers with `result`."""

    on_change = None

    def __init__(self, result: ExecResult) -> None:
        self.result = result
        self.calls: list[list[str]] = []

    async def exec(self, pod: Pod, name: str, command: list[str]) -> ExecResult:
        self.calls.append(command)
        return self.result


async def test_exec_hook_success_and_failure() -> None:
    pod = make_pod()
    handler = LifecycleHandler(exec=ExecAction(command=["sh", "-c", "x"]))
    ok = ExecOnly(ExecResult(exit_code=0))
    assert await run_handler(ok, pod, container("app"), running("app"), handler, "") is None  # type: ignore[arg-type]
    assert ok.calls == [["sh", "-c", "x"]]
    bad = ExecOnly(ExecResult(exit_code=2, stderr=b"nope"))
    message = await run_handler(bad, pod, container("app"), running("app"), handler, "")  # type: ignore[arg-type]
    assert message is not None and "command exited with 2" in message and "nope" in message


async def test_http_hook_by_named_port() -> None:
    statuses = iter([200, 500])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {next(statuses)} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        app = container("app", ports=[ContainerPort(name="web", container_port=port)])
        handler = LifecycleHandler(http_get=HTTPGetAction(path="/hook", port="web"))
        runtime = ExecOnly(ExecResult(exit_code=0))
        pod = make_pod([app])
        assert await run_handler(runtime, pod, app, running("app"), handler, "127.0.0.1") is None  # type: ignore[arg-type]
        failed = await run_handler(runtime, pod, app, running("app"), handler, "127.0.0.1")  # type: ignore[arg-type]
        assert failed == "HTTP lifecycle hook (/hook) for Container failed, statuscode: 500"
        unknown = LifecycleHandler(http_get=HTTPGetAction(port="nope"))
        missing = await run_handler(runtime, pod, app, running("app"), unknown, "127.0.0.1")  # type: ignore[arg-type]
        assert missing is not None and "couldn't find port: nope" in missing
    finally:
        server.close()
        await server.wait_closed()


async def test_sleep_hook() -> None:
    handler = LifecycleHandler(sleep=SleepAction(seconds=0))
    runtime = ExecOnly(ExecResult(exit_code=0))
    assert (
        await run_handler(runtime, make_pod(), container("app"), running("app"), handler, "")
        is None
    )  # type: ignore[arg-type]
