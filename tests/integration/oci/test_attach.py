"""Interactive sessions over the bus into real runc containers: a shell with
and without a tty, its output and exit code, resize, a vanished client,
and no process left behind."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from podmodel.node_api import AttachRequest

from clients.podctl.attach_client import AttachError, AttachSession
from services.node_agent.oci.runtime import OciConfig, OciRuntime
from tests.conftest import wait_for
from tests.integration.oci.conftest import NODE, OciHarness, oci_agent
from tests.integration.oci.test_oci_runtime import delete_and_wait, make_pod, phase

T = 20.0


async def _start_pod(oci: OciHarness, name: str) -> None:
    await oci.store.create(make_pod(name, [{"name": "app", "command": ["sleep", "3600"]}]))
    await phase(oci, name, "Running")
    await oci.agent.node_api_ready.wait()


async def _collect(session: AttachSession, until: bytes = b"") -> bytes:
    out = b""
    async with asyncio.timeout(T):
        async for frame in session.output():
            out += frame.data
            if until and until in out:
                break
    return out


def _exec_processes(oci: OciHarness) -> list[str]:
    """`runc exec` processes of this test session still running."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if oci.config.runc_root.encode() in cmd and b"exec" in cmd:
                found.append(pid)
    return found


async def test_tty_shell_echoes_and_exits_with_its_code(oci: OciHarness) -> None:
    await _start_pod(oci, "att")
    request = AttachRequest(
        namespace="default", pod="att", container="app", command=["sh"], tty=True,
        rows=40, cols=100,
    )  # fmt: skip
    session = await AttachSession.open(oci.nc, NODE, request)
    try:
        # The prompt first: runc gives the container's terminal its size just
        # after the shell starts (as the kubelet's first resize does).
        await _collect(session, until=b"# ")
        await session.stdin(b"stty size; echo hel''lo; exit 3\n")
        out = await _collect(session)
    finally:
        await session.close()
    assert session.exit_code == 3, (out, session.error)
    assert b"\r\nhello\r\n" in out  # the terminal's line ending: a real tty
    assert b"40 100" in out
    await wait_for(lambda: not oci.agent.attach.sessions, T, message="session ended")  # type: ignore[union-attr]
    await delete_and_wait(oci, "att")


async def test_pipe_session_forwards_stdin_until_eof(oci: OciHarness) -> None:
    await _start_pod(oci, "att2")
    request = AttachRequest(
        namespace="default", pod="att2", container="app",
        command=["sh", "-c", "echo hello; echo oops >&2; read x; echo got $x; read y || echo eof"],
    )  # fmt: skip
    session = await AttachSession.open(oci.nc, NODE, request)
    try:
        await session.stdin(b"bye\n")
        await session.eof()
        out = await _collect(session)
    finally:
        await session.close()
    assert session.exit_code == 0, session.error
    assert out.replace(b"oops\n", b"") == b"hello\ngot bye\neof\n"
    assert b"oops\n" in out
    session = await AttachSession.open(
        oci.nc, NODE, AttachRequest(namespace="default", pod="att2", container="app",
                                    command=["sh", "-c", "cat; exit 3"])
    )  # fmt: skip
    try:
        await session.stdin(b"abc")
        await session.eof()
        out = await _collect(session)
    finally:
        await session.close()
    assert (out, session.exit_code) == (b"abc", 3)
    await delete_and_wait(oci, "att2")


async def test_resize_reaches_the_container_terminal(oci: OciHarness) -> None:
    await _start_pod(oci, "att3")
    request = AttachRequest(
        namespace="default", pod="att3", container="app", command=["sh"], tty=True
    )
    session = await AttachSession.open(oci.nc, NODE, request)
    try:
        await _collect(session, until=b"# ")
        await session.stdin(b"stty size\n")
        assert b"24 80" in await _collect(session, until=b"24 80")
        await session.resize(50, 132)
        await session.stdin(b"stty size; exit\n")
        out = await _collect(session)
    finally:
        await session.close()
    assert b"50 132" in out and session.exit_code == 0
    await delete_and_wait(oci, "att3")


async def test_a_silent_client_ends_the_session_and_its_process(oci: OciHarness) -> None:
    await _start_pod(oci, "att4")
    request = AttachRequest(
        namespace="default", pod="att4", container="app", command=["sh"], tty=True,
        heartbeat_s=0.3,
    )  # fmt: skip
    session = await AttachSession.open(oci.nc, NODE, request)
    await session.stdin(b"echo ready\n")
    await _collect(session, until=b"ready")
    assert _exec_processes(oci)
    # The client vanishes: no heartbeats, no close frame.
    assert session._beat is not None
    session._beat.cancel()
    started = time.monotonic()
    await wait_for(lambda: not oci.agent.attach.sessions, T, message="session expired")  # type: ignore[union-attr]
    assert time.monotonic() - started < 5
    await wait_for(lambda: not _exec_processes(oci), T, message="runc exec gone")
    await delete_and_wait(oci, "att4")


async def test_close_kills_the_command_and_errors_are_clear(oci: OciHarness) -> None:
    await _start_pod(oci, "att5")
    session = await AttachSession.open(
        oci.nc, NODE, AttachRequest(namespace="default", pod="att5", container="app",
                                    command=["sleep", "300"])
    )  # fmt: skip
    await wait_for(lambda: bool(_exec_processes(oci)), T, message="runc exec running")
    await session.close()
    await wait_for(lambda: not oci.agent.attach.sessions, T, message="session closed")  # type: ignore[union-attr]
    await wait_for(lambda: not _exec_processes(oci), T, message="runc exec gone")
    with pytest.raises(AttachError, match='container "nope" in pod "default/att5" is not running'):
        await AttachSession.open(
            oci.nc, NODE, AttachRequest(namespace="default", pod="att5", container="nope",
                                        command=["sh"])
        )  # fmt: skip
    with pytest.raises(AttachError, match="not found on node"):
        await AttachSession.open(
            oci.nc, NODE, AttachRequest(namespace="default", pod="ghost", container="app",
                                        command=["sh"])
        )  # fmt: skip
    await delete_and_wait(oci, "att5")


async def test_stopping_the_agent_ends_its_sessions(
    oci_config: OciConfig, nats_url: str, redis_url: str
) -> None:
    client = await nats.connect(nats_url)
    try:
        async with oci_agent(oci_config, nats_url, redis_url) as h:
            await _start_pod(h, "att6")
            request = AttachRequest(
                namespace="default", pod="att6", container="app", command=["sh"], tty=True
            )
            session = await AttachSession.open(client, NODE, request)
            await session.stdin(b"echo up\n")
            await _collect(session, until=b"up")
            assert _exec_processes(h)
        # the agent has stopped: the client hears the end, the command is gone
        async with asyncio.timeout(T):
            async for _frame in session.output():
                pass
        await session.close()
        assert session.error == f"node {NODE} ended the session"
        assert not _exec_processes(h)
    finally:
        await client.close()
        await OciRuntime(oci_config).cleanup()


async def test_a_json_client_speaks_the_protocol_without_podbus_code(oci: OciHarness) -> None:
    """What a script in another language does: JSON request, JSON frames
    (bytes as base64), the output subject subscribed before "start"."""
    await _start_pod(oci, "att7")
    opened = await oci.nc.request(
        "podbus.node.oci-n1.attach",
        json.dumps({"namespace": "default", "pod": "att7", "container": "app",
                    "command": ["sh", "-c", "read x; echo got $x"]}).encode(),
        timeout=T,
    )  # fmt: skip
    reply = json.loads(opened.data)
    assert reply["outputSubject"].endswith(".out") and reply["heartbeatS"] == 5.0
    frames: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def on_frame(msg: Msg) -> None:
        await frames.put(json.loads(msg.data))

    sub = await oci.nc.subscribe(reply["outputSubject"], cb=on_frame)
    await oci.nc.flush()
    for frame in ({"kind": "start"}, {"kind": "stdin", "data": base64.b64encode(b"hi\n").decode()}):
        await oci.nc.publish(reply["inputSubject"], json.dumps(frame).encode())
    received: list[dict[str, object]] = []
    async with asyncio.timeout(T):
        while not received or received[-1]["kind"] != "exit":
            received.append(await frames.get())
    await sub.unsubscribe()
    output = b"".join(base64.b64decode(str(f["data"])) for f in received if f["kind"] == "stdout")
    assert output == b"got hi\n"
    assert received[-1] == {"kind": "exit"}  # exit code 0: defaults are left out
    await delete_and_wait(oci, "att7")


async def test_output_held_by_a_background_process_ends_with_it_and_fds_are_closed(
    oci: OciHarness,
) -> None:
    """As with `kubectl exec`: runc waits until the command's output is
    closed, so a background process keeping it open keeps the session."""
    await _start_pod(oci, "att8")
    fds_before = len(os.listdir("/proc/self/fd"))
    session = await AttachSession.open(
        oci.nc, NODE, AttachRequest(namespace="default", pod="att8", container="app",
                                    command=["sh", "-c", "sleep 1 & echo started"])
    )  # fmt: skip
    try:
        out = await _collect(session)
    finally:
        await session.close()
    assert (out, session.exit_code) == (b"started\n", 0)
    await wait_for(lambda: not oci.agent.attach.sessions, T, message="session ended")  # type: ignore[union-attr]
    await wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds_before, T, message="fds closed")
    await delete_and_wait(oci, "att8")
