"""Probe handlers against real local servers on 127.0.0.1 (free ports):
tcpSocket, httpGet (statuses, headers, redirects, timeouts, HTTPS, named
ports), grpc health, and the manager running them on its scheduler."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from podmodel.pod import (
    ContainerPort,
    GRPCAction,
    HTTPGetAction,
    HTTPHeader,
    Probe,
    TCPSocketAction,
)
from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeReport
from servicekit.runner import uvloop_factory

from services.prober.handlers.grpc import probe_grpc
from services.prober.handlers.http import probe_http
from services.prober.handlers.tcp import probe_tcp
from services.prober.logic.grpc_health import DATA, FLAG_END_STREAM, HEADERS, PREFACE
from services.prober.logic.hpack import HpackDecoder
from services.prober.logic.http1 import probe_target, request_template
from services.prober.logic.thresholds import Outcome
from services.prober.manager import ProbeManager, build_run
from services.prober.scheduler import ProbeScheduler
from tests.conftest import wait_for
from tests.unit.prober.grpc_frames import server_reply

HOST = "127.0.0.1"


# ------------------------------------------------------------------ servers


class HttpTarget:
    """A small HTTP server whose paths behave as the tests need; it keeps
    the request heads it received."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.server = await asyncio.start_server(self._handle, HOST, 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.heads.append(head)
        path = head.split(" ")[1]
        try:
            writer.write(await self._respond(path))
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def _respond(self, path: str) -> bytes:
        def reply(status: str, body: bytes = b"", extra: str = "") -> bytes:
            return (
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
            )

        if path == "/ok":
            return reply("200 OK", b"ok")
        if path == "/fail":
            return reply("500 Internal Server Error", b"broken")
        if path == "/redirect":
            return reply("302 Found", extra="Location: /ok\r\n")
        if path == "/redirect-fail":
            return reply("301 Moved Permanently", extra="Location: /fail\r\n")
        if path == "/away":
            return reply("302 Found", b"gone", f"Location: http://localhost:{self.port}/ok\r\n")
        if path == "/loop":
            return reply("307 Temporary Redirect", extra="Location: /loop\r\n")
        if path == "/slow":
            await asyncio.sleep(30)
        if path == "/big":
            return reply("200 OK", b"x" * 100_000)
        if path == "/chunked":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwell\r\n0\r\n\r\n"
        return reply("404 Not Found")


@pytest_asyncio.fixture
async def http_target() -> AsyncIterator[HttpTarget]:
    target = HttpTarget()
    await target.start()
    yield target
    await target.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A port whose accept queue is full: connects hang (SYNs are dropped)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((HOST, port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def get(
    port: int,
    path: str,
    headers: list[HTTPHeader] | None = None,
    timeout: float = 2.0,
    scheme: str = "HTTP",
) -> Outcome:
    return await probe_http(
        probe_target(scheme, HOST, port, path), request_template(headers or []), timeout
    )


# ------------------------------------------------------------------ tcpSocket


async def test_tcp_probe_succeeds_when_the_port_accepts(http_target: HttpTarget) -> None:
    outcome = await probe_tcp(HOST, http_target.port, 1.0)
    assert outcome.result == "success"


async def test_tcp_probe_refused_reads_like_go() -> None:
    port = free_port()
    outcome = await probe_tcp(HOST, port, 1.0)
    assert (outcome.result, outcome.message) == (
        "failure",
        f"dial tcp {HOST}:{port}: connect: connection refused",
    )


async def test_tcp_probe_times_out(stalled_port: int) -> None:
    outcome = await probe_tcp(HOST, stalled_port, 0.3)
    assert (outcome.result, outcome.message) == (
        "failure",
        f"dial tcp {HOST}:{stalled_port}: i/o timeout",
    )


# ------------------------------------------------------------------ httpGet


async def test_http_200_is_success(http_target: HttpTarget) -> None:
    assert (await get(http_target.port, "/ok")).result == "success"
    assert (await get(http_target.port, "/chunked")).result == "success"


async def test_http_500_fails_with_status_code(http_target: HttpTarget) -> None:
    outcome = await get(http_target.port, "/fail")
    assert (outcome.result, outcome.message) == (
        "failure",
        "HTTP probe failed with statuscode: 500",
    )


async def test_http_sends_kubelet_and_custom_headers(http_target: HttpTarget) -> None:
    await get(http_target.port, "/ok", [HTTPHeader(name="X-Custom-Header", value="Awesome")])
    await get(http_target.port, "/ok", [HTTPHeader(name="Host", value="example.com")])
    first, second = (head.split("\r\n") for head in http_target.heads)
    assert first[0] == "GET /ok HTTP/1.1"
    assert f"Host: {HOST}:{http_target.port}" in first
    assert "User-Agent: kube-probe/1.31" in first
    assert "Accept: */*" in first
    assert "X-Custom-Header: Awesome" in first
    assert "Host: example.com" in second


async def test_http_redirect_to_same_host_is_followed(http_target: HttpTarget) -> None:
    outcome = await get(http_target.port, "/redirect")
    assert (outcome.result, outcome.warning) == ("success", False)
    assert [h.split(" ")[1] for h in http_target.heads] == ["/redirect", "/ok"]
    failed = await get(http_target.port, "/redirect-fail")
    assert failed.message == "HTTP probe failed with statuscode: 500"


async def test_http_redirect_to_another_host_is_success_with_warning(
    http_target: HttpTarget,
) -> None:
    outcome = await get(http_target.port, "/away")
    assert (outcome.result, outcome.warning) == ("success", True)
    assert outcome.message == "Probe terminated redirects, Response body: gone"
    assert len(http_target.heads) == 1  # not followed


async def test_http_redirect_loop_stops_after_ten_requests(http_target: HttpTarget) -> None:
    outcome = await get(http_target.port, "/loop")
    assert outcome.result == "failure"
    assert (
        outcome.message
        == f'Get "http://{HOST}:{http_target.port}/loop": stopped after 10 redirects'
    )
    assert len(http_target.heads) == 10


async def test_http_timeout_awaiting_headers(http_target: HttpTarget) -> None:
    outcome = await get(http_target.port, "/slow", timeout=0.3)
    assert outcome.result == "failure"
    assert outcome.message == (
        f'Get "http://{HOST}:{http_target.port}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)"
    )


async def test_http_timeout_while_connecting(stalled_port: int) -> None:
    outcome = await get(stalled_port, "/", timeout=0.3)
    assert outcome.message == (
        f'Get "http://{HOST}:{stalled_port}/": dial tcp {HOST}:{stalled_port}: i/o timeout '
        "(Client.Timeout exceeded while awaiting headers)"
    )


async def test_http_refused() -> None:
    port = free_port()
    outcome = await get(port, "/healthz")
    assert (
        outcome.message
        == f'Get "http://{HOST}:{port}/healthz": dial tcp {HOST}:{port}: connect: connection refused'
    )


async def test_http_body_over_10_kib_is_cut_not_failed(http_target: HttpTarget) -> None:
    assert (await get(http_target.port, "/big")).result == "success"


async def test_http_server_closing_without_answer_fails() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await get(port, "/")
    finally:
        server.close()
    assert outcome.message == f'Get "http://{HOST}:{port}/": EOF'


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    directory: Path = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pod",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_https_skips_certificate_checks(tls_context: ssl.SSLContext) -> None:
    target = HttpTarget()
    await target.start(tls_context)
    try:
        assert (await get(target.port, "/ok", scheme="HTTPS")).result == "success"
        assert (
            await get(target.port, "/fail", scheme="HTTPS")
        ).message == "HTTP probe failed with statuscode: 500"
    finally:
        await target.close()


async def test_named_ports_resolve_through_the_container_ports(http_target: HttpTarget) -> None:
    def assignment(probe: Probe) -> ProbeAssignment:
        return ProbeAssignment(
            pod_uid="u1",
            namespace="default",
            pod_name="web",
            container_name="app",
            container_id="c1",
            probe_type="liveness",
            probe=probe,
            pod_ip=HOST,
            ports=[ContainerPort(name="http", container_port=http_target.port)],
        )

    http_run = build_run(assignment(Probe(http_get=HTTPGetAction(path="/ok", port="http"))), None)
    tcp_run = build_run(assignment(Probe(tcp_socket=TCPSocketAction(port="http"))), None)
    assert (await http_run()).result == "success"
    assert (await tcp_run()).result == "success"


# ------------------------------------------------------------------ grpc


class GrpcHealthServer:
    """Answers one Health/Check per connection: service "" SERVING, "down"
    NOT_SERVING, anything else NotFound; with `implemented=False`,
    Unimplemented for every call."""

    def __init__(self, implemented: bool = True) -> None:
        self.implemented = implemented
        self.requests: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert await reader.readexactly(len(PREFACE)) == PREFACE
            decoder = HpackDecoder()
            headers: dict[str, str] = {}
            message = b""
            while True:
                head = await reader.readexactly(9)
                payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
                if head[3] == HEADERS:
                    headers = dict(decoder.decode(payload))
                elif head[3] == DATA:
                    message += payload
                    if head[4] & FLAG_END_STREAM:
                        break
            self.requests.append(headers)
            service = message[7:].decode()
            if not self.implemented:
                writer.write(server_reply(None, 12, "unknown service grpc.health.v1.Health"))
            elif service == "":
                writer.write(server_reply(1))
            elif service == "down":
                writer.write(server_reply(2))
            else:
                writer.write(server_reply(None, 5, "unknown service"))
            await writer.drain()
            await reader.read()  # until the client closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_grpc_health_check_results() -> None:
    server = GrpcHealthServer()
    await server.start()
    try:
        serving = await probe_grpc(HOST, server.port, "", 2.0)
        down = await probe_grpc(HOST, server.port, "down", 2.0)
        unknown = await probe_grpc(HOST, server.port, "other", 2.0)
    finally:
        await server.close()
    assert serving.result == "success"
    assert down.message == 'service unhealthy (responded with "NOT_SERVING")'
    assert (
        unknown.message
        == "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
    )
    assert server.requests[0][":path"] == "/grpc.health.v1.Health/Check"
    assert server.requests[0]["user-agent"] == "kube-probe/1.31"


async def test_grpc_server_without_health_service() -> None:
    server = GrpcHealthServer(implemented=False)
    await server.start()
    try:
        outcome = await probe_grpc(HOST, server.port, "", 2.0)
    finally:
        await server.close()
    assert outcome.message == (
        "error: this server does not implement the grpc health protocol "
        "(grpc.health.v1.Health): unknown service grpc.health.v1.Health"
    )


async def test_grpc_refused_times_out_like_a_blocking_dial() -> None:
    port = free_port()
    outcome = await probe_grpc(HOST, port, "", 0.4)
    assert outcome.message == (
        f'timeout: failed to connect service "{HOST}:{port}" within 0.4s: context deadline exceeded'
    )


async def test_grpc_probe_through_the_manager_run() -> None:
    server = GrpcHealthServer()
    await server.start()
    try:
        run = build_run(
            ProbeAssignment(
                pod_uid="u1",
                namespace="default",
                pod_name="web",
                container_name="app",
                container_id="c1",
                probe_type="readiness",
                probe=Probe(grpc=GRPCAction(port=server.port)),
                pod_ip=HOST,
            ),
            None,
        )
        assert (await run()).result == "success"
    finally:
        await server.close()


# ------------------------------------------------------------------ manager


async def test_manager_reports_readiness_transitions_from_real_probes(
    http_target: HttpTarget,
) -> None:
    reports: list[ProbeReport] = []
    manager = ProbeManager("n1", reports.append, scheduler=ProbeScheduler())
    probe = Probe(
        http_get=HTTPGetAction(path="/ok", port=http_target.port),
        period_seconds=1,
        failure_threshold=1,
    )
    assignment = ProbeAssignment(
        pod_uid="u1",
        namespace="default",
        pod_name="web",
        container_name="app",
        container_id="c1",
        probe_type="readiness",
        probe=probe,
        pod_ip=HOST,
        started_at="2020-01-01T00:00:00Z",
    )
    manager.apply(ProbeAssignmentSet(node="n1", generation=1, probes=[assignment]))
    try:
        await wait_for(lambda: reports, timeout=5, message="first transition")
        assert [(r.result, r.message) for r in reports[0].results] == [("success", "")]
        await http_target.close()
        await wait_for(lambda: len(reports) >= 2, timeout=5, message="failure transition")
        failure = reports[1].results[0]
        assert failure.result == "failure"
        assert f"dial tcp {HOST}:{http_target.port}: connect: connection refused" in failure.message
    finally:
        await manager.close()


async def test_http_connection_reset_reads_like_go() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    server = await asyncio.start_server(reset, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await get(port, "/")
    finally:
        server.close()
    assert outcome.result == "failure"
    assert outcome.message.startswith(f'Get "http://{HOST}:{port}/": read tcp {HOST}:')
    assert outcome.message.endswith(f"->{HOST}:{port}: read: connection reset by peer")


# ------------------------------------------------------------------ on uvloop


def test_the_handlers_behave_the_same_on_uvloop_the_prober_services_loop(
    tls_context: ssl.SSLContext, stalled_port: int
) -> None:
    """`python -m services.prober` runs on uvloop: the handlers' socket
    work (connect and readiness waits, TLS, timeouts) gives the same
    outcomes and kubelet messages there."""
    factory = uvloop_factory()
    if factory is None:
        pytest.skip("uvloop is not installed")

    async def scenario() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        plain, tls = HttpTarget(), HttpTarget()
        await plain.start()
        await tls.start(tls_context)
        refused = free_port()
        try:
            assert (await probe_tcp(HOST, plain.port, 1.0)).result == "success"
            assert (await probe_tcp(HOST, refused, 1.0)).message == (
                f"dial tcp {HOST}:{refused}: connect: connection refused"
            )
            assert (await probe_tcp(HOST, stalled_port, 0.3)).message == (
                f"dial tcp {HOST}:{stalled_port}: i/o timeout"
            )
            assert (await get(plain.port, "/ok")).result == "success"
            assert (await get(plain.port, "/big")).result == "success"
            assert (await get(plain.port, "/fail")).message == (
                "HTTP probe failed with statuscode: 500"
            )
            assert (await get(plain.port, "/redirect")).result == "success"
            assert (await get(plain.port, "/slow", timeout=0.3)).message == (
                f'Get "http://{HOST}:{plain.port}/slow": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            )
            assert (await get(tls.port, "/ok", scheme="HTTPS")).result == "success"
            assert (await get(tls.port, "/fail", scheme="HTTPS")).message == (
                "HTTP probe failed with statuscode: 500"
            )
        finally:
            await plain.close()
            await tls.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(scenario(), 30))
