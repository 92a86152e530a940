"""Real nats-server and redis-server for the tests.

Through testcontainers when a Docker engine answers, else from the dev extra's
binaries (servicekit.embedded). Both kinds offer the same small interface:
url, start(), stop(), restart() on the same port, close().
"""

from __future__ import annotations

import os
from typing import Protocol

from servicekit.embedded import NatsServer, RedisServer, free_port


class ServerHandle(Protocol):
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


def docker_answers() -> bool:
    if os.environ.get("PODBUS_TEST_NO_DOCKER"):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


class _ContainerServer:
    """A testcontainers container bound to a fixed host port so that a
    restart keeps the URL."""

    def __init__(self, image: str, container_port: int, scheme: str, command: str | None) -> None:
        from testcontainers.core.container import DockerContainer

        self.port = free_port()
        self.container = DockerContainer(image).with_bind_ports(container_port, self.port)
        if command:
            self.container = self.container.with_command(command)
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        from servicekit.embedded import _wait_port  # noqa: F401

        if self.container.get_wrapped_container() is None:
            self.container.start()
        else:
            self.container.get_wrapped_container().start()
        _wait_tcp(self.port)

    def stop(self) -> None:
        self.container.get_wrapped_container().stop(timeout=5)

    def restart(self) -> None:
        self.container.get_wrapped_container().restart(timeout=5)
        _wait_tcp(self.port)

    def close(self) -> None:
        self.container.stop()


def _wait_tcp(port: int, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


def make_nats() -> ServerHandle:
    if docker_answers():
        return _ContainerServer("nats:2.10", 4222, "nats", "-js -sd /data")
    return NatsServer()


def make_redis() -> ServerHandle:
    if docker_answers():
        return _ContainerServer("redis:7", 6379, "redis", "redis-server --appendonly yes")
    return RedisServer(appendonly=True)
