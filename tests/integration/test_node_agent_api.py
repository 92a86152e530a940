"""The node-agent's request-reply services (exec, logs) and ephemeral
containers, on the simulated runtime against real NATS and Redis."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg
from podmodel.codec import decode, encode
from podmodel.event import Event
from podmodel.node_api import (
    LOGS_END_HEADER,
    ExecRequest,
    ExecResponse,
    LogsReply,
    LogsRequest,
)
from podmodel.pod import EphemeralContainer, Pod
from podmodel.subjects import node_exec, node_logs

from tests.conftest import wait_for
from tests.integration.node_agent_harness import make_pod, running_agent


async def wait_running(h, name: str) -> Pod:  # type: ignore[no-untyped-def]
    async def check() -> Pod | None:
        pod = await h.pod(name)
        return pod if pod is not None and pod.status.phase == "Running" else None

    result: Pod = await wait_for(check, 10, message=f"{name} Running")
    return result


async def exec_in(h, req: ExecRequest) -> ExecResponse:  # type: ignore[no-untyped-def]
    msg = await h.nc.request(node_exec("n1"), encode(req), timeout=5)
    return decode(msg.data, ExecResponse)


async def logs_of(h, req: LogsRequest) -> LogsReply:  # type: ignore[no-untyped-def]
    msg = await h.nc.request(node_logs("n1"), encode(req), timeout=5)
    return decode(msg.data, LogsReply)


async def test_exec_runs_in_a_running_container_and_refuses_otherwise(
    nats_url: str, redis_url: str
) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("web", "app"))
        await wait_running(h, "web")
        ok = await exec_in(
            h, ExecRequest(namespace="default", pod="web", container="app", command=["echo", "hi"])
        )
        assert ok.exit_code == 0 and ok.stdout == "echo hi\n" and not ok.error
        missing = await exec_in(
            h, ExecRequest(namespace="default", pod="nope", container="app", command=["true"])
        )
        assert 'pod "default/nope" not found on node n1' in missing.error
        wrong = await exec_in(
            h, ExecRequest(namespace="default", pod="web", container="other", command=["true"])
        )
        assert 'container "other"' in wrong.error and "not running" in wrong.error
        stale = await exec_in(
            h,
            ExecRequest(
                namespace="default",
                pod="web",
                container="app",
                command=["true"],
                container_id="sim://old",
            ),
        )
        assert "not sim://old" in stale.error
        # JSON in, JSON out (what the nats CLI sends).
        msg = await h.nc.request(
            node_exec("n1"),
            b'{"namespace":"default","pod":"web","container":"app","command":["ls"]}',
            timeout=5,
        )
        assert msg.data.startswith(b"{") and b'"stdout":"ls\\n"' in msg.data
        # A malformed request gets an error reply, and the service goes on.
        bad = await h.nc.request(node_exec("n1"), b'{"pod": 3}', timeout=5)
        assert bad.headers and bad.headers.get("Podbus-Error")
        again = await exec_in(
            h, ExecRequest(namespace="default", pod="web", container="app", command=["x"])
        )
        assert again.exit_code == 0


async def test_logs_tail_previous_timestamps_and_errors(nats_url: str, redis_url: str) -> None:
    sim = {"log": "line one\nline two", "app.exit-after": "0.3s", "app.exit-code": "1"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("logs", "app", sim=sim))

        async def restarted() -> bool:
            p = await h.pod("logs")
            return bool(
                p
                and p.status.container_statuses
                and p.status.container_statuses[0].restart_count >= 1
            )

        await wait_for(restarted, 15, message="a previous attempt")
        whole = await logs_of(h, LogsRequest(namespace="default", pod="logs"))
        assert whole.data == "line one\nline two\n" and not whole.error
        last = await logs_of(
            h, LogsRequest(namespace="default", pod="logs", container="app", tail_lines=1)
        )
        assert last.data == "line two\n"
        previous = await logs_of(h, LogsRequest(namespace="default", pod="logs", previous=True))
        assert previous.data == "line one\nline two\n"
        stamped = await logs_of(h, LogsRequest(namespace="default", pod="logs", timestamps=True))
        lines = stamped.data.splitlines()
        assert len(lines) == 2 and lines[0].endswith(" line one")
        assert lines[0].split(" ")[0].endswith("Z") and "T" in lines[0].split(" ")[0]
        bad = await logs_of(h, LogsRequest(namespace="default", pod="logs", container="nope"))
        assert bad.error == "container nope is not valid for pod logs: choose one of [app]"
        gone = await logs_of(h, LogsRequest(namespace="default", pod="ghost"))
        assert 'pods "ghost" not found' in gone.error


async def test_logs_follow_streams_until_the_container_exits(nats_url: str, redis_url: str) -> None:
    sim = {"log": "hello", "exit-after": "1s"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("follow", "app", restart_policy="Never", sim=sim))
        await wait_running(h, "follow")
        chunks: list[str] = []
        ended = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            if msg.headers and msg.headers.get(LOGS_END_HEADER):
                assert msg.data == b""
                ended.set()
                return
            chunks.append(decode(msg.data, LogsReply).data)

        inbox = h.nc.new_inbox()
        await h.nc.subscribe(inbox, cb=on_msg)
        await h.nc.publish(
            node_logs("n1"),
            encode(LogsRequest(namespace="default", pod="follow", follow=True)),
            reply=inbox,
        )
        async with asyncio.timeout(10):
            await ended.wait()  # the stream ends by itself once the container exited
        assert "".join(chunks) == "hello\n"
        pod = await h.pod("follow")
        assert pod is not None and pod.status.phase == "Succeeded"


async def test_ephemeral_container_starts_once_and_is_never_restarted(
    nats_url: str, redis_url: str
) -> None:
    sim = {"debug.exit-after": "0.2s", "debug.exit-code": "3"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("eph", "app", sim=sim))
        pod = await wait_running(h, "eph")
        spec = msgspec.structs.replace(
            pod.spec,
            ephemeral_containers=[
                EphemeralContainer(name="debug", image="busybox", target_container_name="app")
            ],
        )
        await h.store.update(msgspec.structs.replace(pod, spec=spec))

        async def debug_done() -> Pod | None:
            p = await h.pod("eph")
            st = p.status.ephemeral_container_statuses if p else []
            return p if st and st[0].state.terminated is not None else None

        p = await wait_for(debug_done, 10, message="ephemeral container ran")
        st = p.status.ephemeral_container_statuses[0]
        assert st.name == "debug" and st.state.terminated is not None
        assert st.state.terminated.exit_code == 3 and st.state.terminated.reason == "Error"
        assert st.restart_count == 0 and p.status.phase == "Running"

        async def started_event() -> bool:
            events, _rv = await h.store.list(Event, "default")
            return any(
                e.reason == "Started"
                and e.involved_object.field_path == "spec.ephemeralContainers{debug}"
                for e in events
            )

        await wait_for(started_event, 5, message="Started event of the ephemeral container")
        # Events are written after the passes that saw the exit: still one attempt.
        p2 = await h.pod("eph")
        assert p2 is not None and p2.status.ephemeral_container_statuses[0].restart_count == 0
        assert p2.status.ephemeral_container_statuses[0].container_id == st.container_id
