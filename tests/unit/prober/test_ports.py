"""Probe port resolution (pkg/probe/util.go) and host:port formatting."""

from __future__ import annotations

import pytest
from podmodel.pod import ContainerPort

from services.prober.logic.ports import PortError, join_host_port, resolve_port

PORTS = [
    ContainerPort(name="http", container_port=8080),
    ContainerPort(name="grpc", container_port=9090),
]


def test_named_port_resolves_to_container_port() -> None:
    assert resolve_port("http", PORTS) == 8080
    assert resolve_port(8081, PORTS) == 8081


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("metrics", 'port "metrics" not found'),
        ("8080", 'port "8080" not found'),
        (0, "invalid port number: 0"),
        (70000, "invalid port number: 70000"),
    ],
)
def test_unresolvable_ports_say_why(port: int | str, message: str) -> None:
    with pytest.raises(PortError, match=message):
        resolve_port(port, PORTS)


def test_join_host_port_brackets_ipv6() -> None:
    assert join_host_port("10.0.0.5", 80) == "10.0.0.5:80"
    assert join_host_port("fd00::5", 80) == "[fd00::5]:80"
