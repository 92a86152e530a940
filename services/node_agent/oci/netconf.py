"""Addresses, links and the default route inside pods' network namespaces,
set from this process: a short-lived thread enters each namespace
(setns(2) moves only the calling thread) and configures it with the
classic interface ioctls, as a CNI plugin does with netlink. One thread
configures a whole batch of pods; the alternative, an `ip -n NS` process
per pod, cost a fork and exec of a large Python process each and, with 50
pods starting at once, most of a second.

I/O only; which address a pod gets is decided in `podfiles`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from services.node_agent.oci.threads import in_fresh_thread

CLONE_NEWNET = 0x40000000

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCADDRT = 0x890B
IFF_UP = 0x1
RTF_UP = 0x1
RTF_GATEWAY = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
# struct rtentry with the platform's alignment (LP64: 120 bytes).
_RTENTRY = struct.Struct("@L16s16s16sHhLPhPLLH0L")


@dataclass(frozen=True)
class InsideConfig:
    """What one pod's namespace gets: lo up, `ip/prefixlen` on eth0, eth0
    up, default route via `gateway`."""

    netns_path: str
    ip: str
    prefixlen: int
    gateway: str


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("@H2s4s8x", socket.AF_INET, b"\0\0", socket.inet_aton(ip))


def _ifreq(name: str, payload: bytes) -> bytes:
    return struct.pack("@16s24s", name.encode(), payload)


def _set_up(sock: socket.socket, name: str) -> None:
    got = fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq(name, b""))
    flags = struct.unpack_from("@h", got, 16)[0]
    fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(name, struct.pack("@h", flags | IFF_UP)))


def _configure_here(cfg: InsideConfig) -> None:
    """In the namespace this thread is in now."""
    mask = str(ipaddress.IPv4Network(f"0.0.0.0/{cfg.prefixlen}").netmask)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        _set_up(sock, "lo")
        fcntl.ioctl(sock, SIOCSIFADDR, _ifreq("eth0", _sockaddr_in(cfg.ip)))
        fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq("eth0", _sockaddr_in(mask)))
        _set_up(sock, "eth0")
        route = _RTENTRY.pack(
            0,
            _sockaddr_in("0.0.0.0"),
            _sockaddr_in(cfg.gateway),
            _sockaddr_in("0.0.0.0"),
            RTF_UP | RTF_GATEWAY,
            0, 0, 0, 0, 0, 0, 0, 0,
        )  # fmt: skip
        fcntl.ioctl(sock, SIOCADDRT, route)


def configure_in_thread(configs: Sequence[InsideConfig]) -> list[str | None]:
    """Configure each namespace; per config None or the error, in order.
    Must run in a thread of its own that ends afterwards (it is left in
    the last pod's network namespace)."""
    results: list[str | None] = []
    for cfg in configs:
        try:
            fd = os.open(cfg.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            results.append(f"{cfg.netns_path}: {exc.strerror}")
            continue
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            _configure_here(cfg)
        except OSError as exc:
            results.append(f"configuring {cfg.netns_path} ({cfg.ip}): {exc.strerror or exc}")
        else:
            results.append(None)
        finally:
            os.close(fd)
    return results


async def configure(configs: Sequence[InsideConfig]) -> list[str | None]:
    """`configure_in_thread` on a fresh thread, awaited without blocking
    the loop."""
    if not configs:
        return []
    return await in_fresh_thread(lambda: configure_in_thread(configs), "podbus-netconf")
