"""The HTTP/1.1 side of httpGet probes without sockets: request, parser,
redirect rule, verdict."""

from __future__ import annotations

import pytest
from podmodel.pod import HTTPHeader

from services.prober.logic.http1 import (
    MAX_BODY,
    BodyError,
    Follow,
    HeadError,
    HttpResponse,
    ResponseParser,
    canonical_header_key,
    judge,
    next_step,
    probe_target,
    request_template,
)


def header_lines(request: bytes) -> list[str]:
    head = request.decode()
    assert head.endswith("\r\n\r\n")
    return head[:-4].split("\r\n")


def test_request_has_kubelet_defaults() -> None:
    target = probe_target("HTTP", "10.88.0.5", 8080, "/healthz")
    lines = header_lines(request_template([]).render(target, None))
    assert lines[0] == "GET /healthz HTTP/1.1"
    assert "Host: 10.88.0.5:8080" in lines
    assert "User-Agent: kube-probe/1.31" in lines
    assert "Accept: */*" in lines
    assert "Connection: close" in lines


def test_custom_headers_override_defaults_and_host() -> None:
    template = request_template(
        [
            HTTPHeader(name="user-agent", value="mine/1"),
            HTTPHeader(name="x-custom-header", value="Awesome"),
            HTTPHeader(name="host", value="example.com"),
        ]
    )
    lines = header_lines(
        template.render(probe_target("http", "10.0.0.1", 80, "/"), template.host_header)
    )
    assert "User-Agent: mine/1" in lines
    assert "X-Custom-Header: Awesome" in lines
    assert "Host: example.com" in lines
    assert not any(line.startswith("User-Agent: kube-probe") for line in lines)


def test_empty_accept_header_removes_accept() -> None:
    template = request_template([HTTPHeader(name="Accept", value="")])
    lines = header_lines(template.render(probe_target("http", "h", 80, "/"), None))
    assert not any(line.lower().startswith("accept") for line in lines)


def test_canonical_header_key_like_go() -> None:
    assert canonical_header_key("x-custom-header") == "X-Custom-Header"
    assert canonical_header_key("ACCEPT") == "Accept"
    assert canonical_header_key("bad header") == "bad header"


def test_target_path_defaults_and_ipv6_url() -> None:
    assert probe_target("HTTPS", "fd00::5", 443, "").url == "https://[fd00::5]:443/"
    assert probe_target("http", "h", 80, "healthz?x=1").target == "/healthz?x=1"


def feed_all(chunks: list[bytes], eof: bool = False) -> HttpResponse:
    parser = ResponseParser()
    complete = False
    for chunk in chunks:
        complete = parser.feed(chunk)
        if complete:
            break
    if not complete:
        assert eof, "response not complete"
        assert parser.feed_eof()
    return parser.response()


def test_parser_content_length_split_anywhere() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"
    for cut in range(1, len(raw)):
        response = feed_all([raw[:cut], raw[cut:]])
        assert (response.status, response.body) == (200, b"hello")


def test_parser_chunked_split_anywhere() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    for cut in range(1, len(raw)):
        assert feed_all([raw[:cut], raw[cut:]]).body == b"abcde"


def test_parser_body_until_close() -> None:
    assert feed_all([b"HTTP/1.0 500 Oops\r\n\r\npartial"], eof=True).body == b"partial"


def test_parser_stops_reading_after_10_kib() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    assert parser.feed(b"x" * (MAX_BODY + 10))
    assert len(parser.response().body) == MAX_BODY


def test_parser_skips_interim_responses() -> None:
    response = feed_all([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"])
    assert response.status == 204


def test_parser_reads_location() -> None:
    response = feed_all([b"HTTP/1.1 302 Found\r\nlocation: /next\r\nContent-Length: 0\r\n\r\n"])
    assert (response.status, response.location) == (302, "/next")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"garbage\r\n\r\n", 'malformed HTTP response "garbage"'),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", 'malformed HTTP status code "2x0 OK"'),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 'bad Content-Length "abc"'),
    ],
)
def test_parser_rejects_malformed_heads(raw: bytes, message: str) -> None:
    with pytest.raises(HeadError, match=message):
        ResponseParser().feed(raw)


def test_parser_eof_before_and_inside_head_and_body() -> None:
    with pytest.raises(HeadError, match=r"^EOF$"):
        ResponseParser().feed_eof()
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200")
    with pytest.raises(HeadError, match="unexpected EOF"):
        parser.feed_eof()
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(BodyError, match="unexpected EOF"):
        parser.feed_eof()


FIRST = probe_target("http", "10.0.0.5", 8080, "/start")


def redirect(location: str | None, status: int = 302) -> HttpResponse:
    return HttpResponse(status, location, b"moved")


def test_redirect_to_same_host_is_followed() -> None:
    step = next_step(FIRST, FIRST, None, redirect("/next?a=1"), 1)
    assert step == Follow(probe_target("http", "10.0.0.5", 8080, "/next?a=1"), None)
    step = next_step(FIRST, FIRST, None, redirect("https://10.0.0.5:8443/secure", 308), 1)
    assert step is not None and step.target.url == "https://10.0.0.5:8443/secure"


def test_redirect_to_another_host_ends_the_chain() -> None:
    assert next_step(FIRST, FIRST, None, redirect("http://example.com/"), 1) is None


def test_redirect_chain_stops_after_ten_requests() -> None:
    assert next_step(FIRST, FIRST, None, redirect("/again"), 9) is not None
    with pytest.raises(HeadError, match="stopped after 10 redirects"):
        next_step(FIRST, FIRST, None, redirect("/again"), 10)


def test_custom_host_kept_only_through_relative_redirects() -> None:
    relative = next_step(FIRST, FIRST, "example.com", redirect("/next"), 1)
    absolute = next_step(FIRST, FIRST, "example.com", redirect("http://10.0.0.5:8080/next"), 1)
    assert relative is not None and relative.host_header == "example.com"
    assert absolute is not None and absolute.host_header is None


def test_non_redirect_statuses_and_missing_location_stop() -> None:
    assert next_step(FIRST, FIRST, None, redirect(None), 1) is None
    assert next_step(FIRST, FIRST, None, redirect("/x", 300), 1) is None
    assert next_step(FIRST, FIRST, None, HttpResponse(200, "/x", b""), 1) is None


def test_unsupported_redirect_scheme_fails() -> None:
    with pytest.raises(HeadError, match='unsupported protocol scheme "ftp"'):
        next_step(FIRST, FIRST, None, redirect("ftp://10.0.0.5/file"), 1)


@pytest.mark.parametrize(
    ("status", "result", "message", "warning"),
    [
        (200, "success", "", False),
        (204, "success", "", False),
        (399, "success", "Probe terminated redirects, Response body: moved", True),
        (302, "success", "Probe terminated redirects, Response body: moved", True),
        (400, "failure", "HTTP probe failed with statuscode: 400", False),
        (500, "failure", "HTTP probe failed with statuscode: 500", False),
        (199, "failure", "HTTP probe failed with statuscode: 199", False),
    ],
)
def test_verdict_by_status(status: int, result: str, message: str, warning: bool) -> None:
    outcome = judge(HttpResponse(status, None, b"moved"))
    assert (outcome.result, outcome.message, outcome.warning) == (result, message, warning)
