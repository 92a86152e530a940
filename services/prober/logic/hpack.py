"""HPACK (RFC 7541), as much as one gRPC health check needs.

Encoding: literal header fields without indexing, no Huffman; always valid,
and the prober never has to track the peer's table.

Decoding: every representation, with the static and dynamic tables, and
Huffman-coded strings of printable ASCII (what HTTP/2 and gRPC headers carry:
gRPC percent-encodes anything else in grpc-message). The Huffman code of
RFC 7541 Appendix B is canonical, so it is rebuilt here from the code length
of each symbol; codes of 19 bits and more (bytes outside printable ASCII,
and EOS) are refused. Pure.
"""

from __future__ import annotations

from collections import deque

# RFC 7541 Appendix A.
STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)

# Code length -> the symbols of that length among printable ASCII and NUL
# (RFC 7541 Appendix B); within a length, codes follow byte order.
_SYMBOLS_BY_LENGTH: tuple[tuple[int, bytes], ...] = (
    (5, b"012aceiost"),
    (6, b" %-./3456789=A_bdfghlmnpru"),
    (7, b":BCDEFGHIJKLMNOPQRSTUVWYjkqvwxyz"),
    (8, b"&*,;XZ"),
    (10, b'!"()?'),
    (11, b"'+|"),
    (12, b"#>"),
    (13, b"\x00$@[]~"),
    (14, b"^}"),
    (15, b"<`{"),
)
_MAX_SUPPORTED_BITS = 15


def _build_codes() -> dict[tuple[int, int], int]:
    codes: dict[tuple[int, int], int] = {}
    code = 0
    previous = _SYMBOLS_BY_LENGTH[0][0]
    for length, symbols in _SYMBOLS_BY_LENGTH:
        code <<= length - previous
        previous = length
        for symbol in sorted(symbols):
            codes[(length, code)] = symbol
            code += 1
    return codes


HUFFMAN_CODES: dict[tuple[int, int], int] = _build_codes()
"""(bit length, code) -> byte."""


class HpackError(ValueError):
    """A header block this decoder cannot read."""


def huffman_decode(data: bytes) -> bytes:
    out = bytearray()
    code = 0
    bits = 0
    codes = HUFFMAN_CODES
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            bits += 1
            if bits >= 5:
                symbol = codes.get((bits, code))
                if symbol is not None:
                    out.append(symbol)
                    code = 0
                    bits = 0
                elif bits >= _MAX_SUPPORTED_BITS:
                    raise HpackError("Huffman code outside printable ASCII")
    # Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if bits > 7 or code != (1 << bits) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


def encode_integer(value: int, prefix_bits: int, first_byte_flags: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return encode_integer(len(raw), 7, 0x00) + raw


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    """A header block of literal fields without indexing (new names)."""
    out = bytearray()
    for name, value in headers:
        out.append(0x00)
        out += _encode_string(name)
        out += _encode_string(value)
    return bytes(out)


class HpackDecoder:
    """Decodes the header blocks of one connection, in order."""

    def __init__(self, max_table_size: int = 4096) -> None:
        self._limit = max_table_size
        self._max_size = max_table_size
        self._table: deque[tuple[str, str]] = deque()
        self._size = 0

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        pos = 0
        end = len(block)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:
                index, pos = self._integer(block, pos, 7)
                headers.append(self._entry(index))
            elif byte & 0x40:
                index, pos = self._integer(block, pos, 6)
                name, pos = self._name(block, pos, index)
                value, pos = self._string(block, pos)
                headers.append((name, value))
                self._add(name, value)
            elif byte & 0x20:
                size, pos = self._integer(block, pos, 5)
                if size > self._limit:
                    raise HpackError("dynamic table size update above the limit")
                self._max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001)
                index, pos = self._integer(block, pos, 4)
                name, pos = self._name(block, pos, index)
                value, pos = self._string(block, pos)
                headers.append((name, value))
        return headers

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if 0 <= dynamic < len(self._table):
            return self._table[dynamic]
        raise HpackError(f"invalid table index {index}")

    def _name(self, block: bytes, pos: int, index: int) -> tuple[str, int]:
        if index:
            return self._entry(index)[0], pos
        return self._string(block, pos)

    def _add(self, name: str, value: str) -> None:
        self._table.appendleft((name, value))
        self._size += len(name) + len(value) + 32
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max_size and self._table:
            name, value = self._table.pop()
            self._size -= len(name) + len(value) + 32

    @staticmethod
    def _integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        limit = (1 << prefix_bits) - 1
        value = block[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(block):
                raise HpackError("truncated integer")
            byte = block[pos]
            pos += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos
            if shift > 28:
                raise HpackError("integer too large")

    def _string(self, block: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(block):
            raise HpackError("truncated string")
        huffman = bool(block[pos] & 0x80)
        length, pos = self._integer(block, pos, 7)
        raw = block[pos : pos + length]
        if len(raw) != length:
            raise HpackError("truncated string")
        if huffman:
            raw = huffman_decode(raw)
        # latin-1 keeps one character per octet, so table sizes stay exact.
        return raw.decode("latin-1"), pos + length
