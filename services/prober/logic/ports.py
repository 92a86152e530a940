"""Resolving a probe's port (number or container port name) and writing
host:port the way Go's net.JoinHostPort does, for messages and URLs.

Follows pkg/probe/util.go ResolveContainerPort: a string is only ever a
port name (no fallback to parsing it as a number). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from podmodel.pod import ContainerPort


class PortError(ValueError):
    """The probe's port cannot be resolved; kubelet treats the run as errored."""


def resolve_port(port: int | str, ports: Sequence[ContainerPort]) -> int:
    if isinstance(port, str):
        for candidate in ports:
            if candidate.name == port:
                number = candidate.container_port
                break
        else:
            raise PortError(f'port "{port}" not found')
    else:
        number = port
    if 0 < number < 65536:
        return number
    raise PortError(f"invalid port number: {number}")


def join_host_port(host: str, port: int) -> str:
    """`10.0.0.5:80`, `[fd00::5]:80`."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
