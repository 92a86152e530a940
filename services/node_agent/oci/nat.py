"""Pods reach beyond the node as in Kubernetes (the CNI bridge plugin's
ipMasq): traffic from the pod CIDR to anywhere else is forwarded by the
node and masqueraded behind the node's address. An nftables table of the
node's own (one per bridge, so several agents or test runs never share
one) through libnftables, loaded in-process: no `nft` or `iptables`
binary is needed, only the library (Debian: libnftables1).

Where the library or the kernel's nf_tables is missing, pods still reach
the node and each other, and the agent says once why they reach nothing
further.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class NatError(Exception):
    """Masquerading could not be set up; the message says why."""


def table_name(bridge: str) -> str:
    return f"podbus-{bridge}"


def ruleset(bridge: str, cidr: str) -> str:
    """The node's table: masquerade what leaves the pod CIDR (pod-to-pod
    traffic keeps its addresses). `flush` first, so applying it again
    replaces the rule instead of adding a second one."""
    table = table_name(bridge)
    return (
        f"add table ip {table}\n"
        f"flush table ip {table}\n"
        f"add chain ip {table} postrouting {{ type nat hook postrouting priority srcnat ; }}\n"
        f"add rule ip {table} postrouting ip saddr {cidr} ip daddr != {cidr} masquerade\n"
    )


@functools.cache
def _nft() -> _Nft:
    """The library, loaded once (NatError if it is missing)."""
    return _Nft()


class _Nft:
    def __init__(self) -> None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise NatError(f"libnftables not found ({exc}); install libnftables1") from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        for fn in ("nft_ctx_get_error_buffer", "nft_ctx_get_output_buffer"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
            getattr(lib, fn).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib

    def run(self, commands: str) -> str:
        """Run nft commands; what they print (a listing), or NatError."""
        ctx = self.lib.nft_ctx_new(0)
        if not ctx:
            raise NatError("nft_ctx_new failed")
        try:
            self.lib.nft_ctx_buffer_output(ctx)
            self.lib.nft_ctx_buffer_error(ctx)
            if self.lib.nft_run_cmd_from_buffer(ctx, commands.encode()) != 0:
                err = (self.lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                raise NatError(err.strip() or "nftables refused the ruleset")
            return (self.lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        finally:
            self.lib.nft_ctx_free(ctx)


def enable(bridge: str, cidr: str) -> None:
    """Forwarding on and the node's masquerade table in place."""
    nft = _nft()
    try:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1\n")
    except OSError as exc:
        raise NatError(f"cannot enable IPv4 forwarding: {exc}") from exc
    nft.run(ruleset(bridge, cidr))


def listing(bridge: str) -> str:
    """The node's table as `nft list table` prints it ("" when absent)."""
    try:
        return _nft().run(f"list table ip {table_name(bridge)}\n")
    except NatError:
        return ""


def table_exists(bridge: str) -> bool:
    return bool(listing(bridge))


def disable(bridge: str) -> bool:
    """Remove the node's table (clean-up); True when there was one.
    Forwarding stays on: other things on the host may rely on it."""
    try:
        _nft().run(f"delete table ip {table_name(bridge)}\n")
    except NatError:
        return False
    return True
