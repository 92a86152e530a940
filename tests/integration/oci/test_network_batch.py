"""Pods' network namespaces set up together: one `ip -batch` for the host
side, one thread for the inside (netconf). Each pod still gets its own
address, lo and eth0 up and the default route, and a pod whose set-up
fails fails alone. Real namespaces, veths and a bridge of the test's own,
all removed at the end."""

# Short local commands and /sys checks in a test: blocking is fine here.
# ruff: noqa: ASYNC221, ASYNC240

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.node_agent.oci import hostops, nat

pytestmark = pytest.mark.root

TAG = f"nb{os.getpid() % 10000}"


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False).stdout


@pytest_asyncio.fixture
async def network() -> AsyncIterator[hostops.Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    state = Path(tempfile.mkdtemp(prefix=f"podbus-{TAG}-"))
    net = hostops.Network(f"{TAG}br", "10.231.7.0/24", state, TAG)
    await net.ensure_bridge()
    try:
        yield net
    finally:
        for ns in net.our_netns():
            await net.teardown(ns, "")
        for i in range(12):
            if Path(f"/sys/class/net/{TAG}v{i}").exists():
                _ip("link", "del", f"{TAG}v{i}")
        await net.delete_bridge()
        shutil.rmtree(state, ignore_errors=True)
    assert not net.our_netns()
    assert not Path(f"/sys/class/net/{TAG}br").exists()


async def test_pods_starting_together_each_get_their_own_configured_namespace(
    network: hostops.Network,
) -> None:
    pods = [(f"{TAG}-p{i}", f"{TAG}v{i}", f"10.231.7.{10 + i}") for i in range(8)]
    async with asyncio.timeout(30):
        await asyncio.gather(*(network.setup(ns, veth, ip) for ns, veth, ip in pods))
    for ns, veth, ip in pods:
        addr = _ip("-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")
        assert f"inet {ip}/24" in addr, (ns, addr)
        assert "state UP" in _ip("-n", ns, "link", "show", "eth0") or "LOWER_UP" in _ip(
            "-n", ns, "link", "show", "eth0"
        )
        assert "UP" in _ip("-n", ns, "link", "show", "lo")
        assert "default via 10.231.7.1 dev eth0" in _ip("-n", ns, "route"), ns
        assert f"master {TAG}br" in _ip("link", "show", veth), veth
    # traffic flows between pods set up in the same batch
    ping = subprocess.run(
        ["ip", "netns", "exec", pods[0][0], "busybox", "ping", "-c", "1", "-W", "5", pods[1][2]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr


async def test_a_pod_whose_set_up_fails_fails_alone(network: hostops.Network) -> None:
    good = [(f"{TAG}-g{i}", f"{TAG}v{i}", f"10.231.7.{40 + i}") for i in range(3)]
    bad = (f"{TAG}-bad", "x" * 20, "10.231.7.60")  # no interface name has 20 characters
    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(network.setup(ns, veth, ip) for ns, veth, ip in [*good, bad]),
            return_exceptions=True,
        )
    assert results[:3] == [None, None, None], results
    assert isinstance(results[3], hostops.HostError), results[3]
    assert f"{TAG}-bad" in str(results[3]) and "x" * 20 in str(results[3]), str(results[3])
    for ns, _veth, ip in good:
        assert f"inet {ip}/24" in _ip("-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")


async def test_pods_reach_beyond_the_node_through_masquerade(network: hostops.Network) -> None:
    """An outside host (a namespace of its own behind a veth from the node)
    with no route back to the pod CIDR answers a pod only once the node
    masquerades the pod's traffic; applying the table again keeps one rule."""
    pod_ns, outside = f"{TAG}-nat", f"{TAG}-out"
    await network.setup(pod_ns, f"{TAG}v11", "10.231.7.70")
    _ip("netns", "add", outside)
    _ip("link", "add", f"{TAG}o0", "type", "veth", "peer", "name", "eth0", "netns", outside)
    _ip("addr", "add", "198.51.100.1/30", "dev", f"{TAG}o0")
    _ip("link", "set", f"{TAG}o0", "up")
    _ip("-n", outside, "addr", "add", "198.51.100.2/30", "dev", "eth0")
    _ip("-n", outside, "link", "set", "eth0", "up")
    forwarding = nat.IP_FORWARD.read_text()

    def ping() -> int:
        argv = ["ip", "netns", "exec", pod_ns, "busybox", "ping", "-c1", "-W1", "198.51.100.2"]
        return subprocess.run(argv, capture_output=True, check=False).returncode

    try:
        nat.IP_FORWARD.write_text("1\n")
        assert ping() != 0  # forwarded, but the answer has no way back to 10.231.7.70
        nat.enable(network.bridge, network.cidr)
        assert ping() == 0
        nat.enable(network.bridge, network.cidr)
        listed = nat.listing(network.bridge)
        assert listed.count("masquerade") == 1, listed
        assert "ip saddr 10.231.7.0/24 ip daddr != 10.231.7.0/24 masquerade" in listed
    finally:
        assert nat.disable(network.bridge)
        nat.IP_FORWARD.write_text(forwarding)
    assert not nat.table_exists(network.bridge)
