"""The HTTP/1.1 side of an httpGet probe, without I/O: the request bytes,
an incremental response parser, the redirect rule and the verdict.

Follows the kubelet (pkg/probe/http/request.go, http.go) and Go's net/http
client it relies on:
- headers: the probe's httpHeaders (names canonicalised as Go does), then
  `User-Agent: kube-probe/<major>.<minor>` and `Accept: */*` unless given
  (an empty Accept removes it); a `Host` header becomes the request's host;
  keep-alives are off, so every request says `Connection: close`;
- 200-399 is success; 3xx that is not followed is a success with the
  warning `Probe terminated redirects, Response body: <body>`; anything
  else fails with `HTTP probe failed with statuscode: <code>`;
- redirects (301/302/303/307/308 with a Location) are followed only to the
  same host name as the first request, at most 10 requests in all; a
  redirect to another host ends the chain with that 3xx response;
- the body is read up to 10 KiB; more is cut off, not an error.
Errors carry Go's wording: `Get "<url>": <cause>`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from podmodel.pod import HTTPHeader

from services.prober.logic.ports import join_host_port
from services.prober.logic.thresholds import SUCCESS, Outcome

KUBE_VERSION = "1.31"
USER_AGENT = f"kube-probe/{KUBE_VERSION}"
MAX_BODY = 10 * 1024
MAX_HEADER_BYTES = 1 << 20
MAX_REQUESTS = 10
"""Go's client stops after 10 requests (kubelet's redirectChecker)."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_BODY_STATUSES = frozenset({204, 304})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/?&=%:@!$'()*+,;~-._[]#"


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where one request goes. `host` is the host as in the URL, without
    brackets (IPv6) and without port."""

    scheme: str
    host: str
    port: int
    target: str
    """The request target: `/path?query`."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{join_host_port(self.host, self.port)}{self.target}"

    @property
    def authority(self) -> str:
        return join_host_port(self.host, self.port)


def probe_target(scheme: str, host: str, port: int, path: str) -> HttpTarget:
    """The first request of an httpGet probe (kubelet formatURL)."""
    scheme = (scheme or "http").lower()
    target = quote(path or "/", safe=_PATH_SAFE)
    if "#" in target:
        target = target.split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target
    return HttpTarget(scheme, host, port, target)


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `x-custom-header` ->
    `X-Custom-Header`; names with characters outside a token stay as given."""
    if not name or any(c in name for c in ' \t:"(),/;<=>?@[\\]{}'):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """The parts of a probe's request that do not change between runs."""

    headers: tuple[tuple[str, str], ...]
    host_header: str | None
    """A `Host` from httpHeaders, else None (the URL's host:port is used)."""

    def render(self, target: HttpTarget, host_header: str | None) -> bytes:
        host = host_header if host_header is not None else target.authority
        lines = [f"GET {target.target} HTTP/1.1", f"Host: {host}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def request_template(http_headers: Sequence[HTTPHeader]) -> RequestTemplate:
    """kubelet newProbeRequest: the probe's headers plus the defaults."""
    headers: list[tuple[str, str]] = []
    host_header: str | None = None
    names: set[str] = set()
    for header in http_headers:
        name = canonical_header_key(header.name)
        value = header.value.replace("\r", " ").replace("\n", " ")
        names.add(name)
        if name == "Host":
            if host_header is None and value:
                host_header = value
            continue
        headers.append((name, value))
    if "User-Agent" not in names:
        headers.insert(0, ("User-Agent", USER_AGENT))
    if "Accept" not in names:
        headers.append(("Accept", "*/*"))
    elif all(value == "" for name, value in headers if name == "Accept"):
        headers = [(n, v) for n, v in headers if n != "Accept"]
    return RequestTemplate(tuple(headers), host_header)


class HeadError(Exception):
    """The response head could not be read; the probe fails with
    `Get "<url>": <message>`."""


class BodyError(Exception):
    """The body could not be read; kubelet treats the run as errored."""


class _Stage(enum.Enum):
    HEAD = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_EOF = 3
    DONE = 4


@dataclass(slots=True)
class HttpResponse:
    status: int
    location: str | None
    body: bytes


class ResponseParser:
    """Feed it the bytes of one response; `feed` returns True when the
    response is complete (headers plus the body up to MAX_BODY)."""

    __slots__ = ("_buf", "_chunk_left", "_left", "_seen", "_stage", "body", "location", "status")

    def __init__(self) -> None:
        self._buf = b""
        self._stage = _Stage.HEAD
        self._left = 0
        self._chunk_left = -1
        self._seen = False
        self.status = 0
        self.location: str | None = None
        self.body = b""

    @property
    def has_head(self) -> bool:
        return self._stage is not _Stage.HEAD

    def response(self) -> HttpResponse:
        return HttpResponse(self.status, self.location, self.body[:MAX_BODY])

    def feed(self, data: bytes) -> bool:
        self._seen = True
        stage = self._stage
        if stage is _Stage.HEAD:
            buf = self._buf + data if self._buf else data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise HeadError(
                            f"net/http: server response headers exceeded {MAX_HEADER_BYTES} bytes; aborted"
                        )
                    self._buf = buf
                    return False
                head, buf = buf[:end], buf[end + 4 :]
                if self._parse_head(head):
                    break
            self._buf = b""
            stage = self._stage
            if stage is _Stage.DONE:
                return True
            if not buf:
                return False
            data = buf
        if stage is _Stage.LENGTH:
            self.body += data[: self._left]
            self._left -= len(data)
            if self._left <= 0 or len(self.body) >= MAX_BODY:
                self._stage = _Stage.DONE
                return True
            return False
        if stage is _Stage.CHUNKED:
            return self._feed_chunked(data)
        if stage is _Stage.UNTIL_EOF:
            self.body += data
            if len(self.body) >= MAX_BODY:
                self._stage = _Stage.DONE
                return True
            return False
        return True

    def feed_eof(self) -> bool:
        """The peer closed. True if that completes the response; raises if
        the response was cut short."""
        stage = self._stage
        if stage is _Stage.HEAD:
            raise HeadError("unexpected EOF" if self._seen else "EOF")
        if stage is _Stage.UNTIL_EOF or stage is _Stage.DONE:
            self._stage = _Stage.DONE
            return True
        raise BodyError("unexpected EOF")

    def _parse_head(self, head: bytes) -> bool:
        """Parse one response head; False for an interim 1xx response that
        is skipped (as Go's transport does)."""
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        status_line = lines[0]
        proto, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not proto.startswith("HTTP/") or not rest:
            raise HeadError(
                f'net/http: HTTP/1.x transport connection broken: malformed HTTP response "{status_line}"'
            )
        if len(code) != 3 or not code.isdigit() or (len(rest) > 3 and rest[3] != " "):
            raise HeadError(
                f'net/http: HTTP/1.x transport connection broken: malformed HTTP status code "{rest}"'
            )
        status = int(code)
        if 100 <= status < 200 and status != 101:
            return False
        length: int | None = None
        chunked = False
        location: str | None = None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            if key == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise HeadError(f'bad Content-Length "{value}"')
                length = int(value)
            elif key == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif key == "location" and location is None:
                location = value.strip()
        self.status = status
        self.location = location
        if status < 200 or status in _NO_BODY_STATUSES:
            self._stage = _Stage.DONE
        elif chunked:
            self._stage = _Stage.CHUNKED
        elif length is not None:
            self._left = length
            self._stage = _Stage.LENGTH if length else _Stage.DONE
        else:
            self._stage = _Stage.UNTIL_EOF
        return True

    def _feed_chunked(self, data: bytes) -> bool:
        # _chunk_left: -1 = a size line is next, 0 = the CRLF after a
        # chunk's data is next, n > 0 = n data bytes of the chunk are next.
        buf = self._buf + data if self._buf else data
        while True:
            left = self._chunk_left
            if left < 0:
                end = buf.find(b"\r\n")
                if end < 0:
                    self._buf = buf
                    return False
                size_text = buf[:end].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BodyError("invalid byte in chunk length") from None
                buf = buf[end + 2 :]
                if size == 0:
                    self._stage = _Stage.DONE
                    return True
                self._chunk_left = size
            elif left == 0:
                if len(buf) < 2:
                    self._buf = buf
                    return False
                buf = buf[2:]
                self._chunk_left = -1
            else:
                if not buf:
                    self._buf = b""
                    return False
                take = buf[:left]
                self.body += take
                self._chunk_left = left - len(take)
                buf = buf[len(take) :]
                if len(self.body) >= MAX_BODY:
                    self._stage = _Stage.DONE
                    return True


@dataclass(frozen=True, slots=True)
class Follow:
    """Make another request."""

    target: HttpTarget
    host_header: str | None


def next_step(
    first: HttpTarget,
    current: HttpTarget,
    host_header: str | None,
    response: HttpResponse,
    requests_made: int,
) -> Follow | None:
    """After a response: follow a redirect (Follow) or stop and judge this
    response (None). Raises HeadError for a redirect chain the client
    refuses (too long, bad Location, unsupported scheme)."""
    if response.status not in REDIRECT_STATUSES or not response.location:
        return None
    try:
        resolved = urljoin(current.url, response.location)
        parts = urlsplit(resolved)
        hostname = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise HeadError(f'failed to parse Location header "{response.location}": {exc}') from None
    # kubelet redirectChecker: another host ends the chain with this 3xx.
    if hostname != first.host.lower():
        return None
    if requests_made >= MAX_REQUESTS:
        raise HeadError("stopped after 10 redirects")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise HeadError(f'unsupported protocol scheme "{parts.scheme}"')
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    nxt = HttpTarget(scheme, first.host, port or _DEFAULT_PORTS[scheme], target)
    # Go keeps a custom Host header only through relative redirects.
    relative = not urlsplit(response.location).scheme
    return Follow(nxt, host_header if relative else None)


def judge(response: HttpResponse) -> Outcome:
    """kubelet DoHTTPProbe's verdict on the final response."""
    status = response.status
    if 200 <= status < 400:
        if status >= 300:
            body = response.body.decode("utf-8", "replace")
            return Outcome(
                "success", f"Probe terminated redirects, Response body: {body}", warning=True
            )
        return SUCCESS
    return Outcome("failure", f"HTTP probe failed with statuscode: {status}")
