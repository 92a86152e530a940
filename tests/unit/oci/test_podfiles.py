"""Pure sandbox files: hostname, /etc/hosts, resolv.conf, IP allocation, names."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from podmodel.pod import Pod

from services.node_agent.oci.podfiles import (
    AllocationError,
    container_id,
    gateway_of,
    hosts_file,
    next_free_ip,
    pod_hostname,
    resolv_conf,
    veth_name,
)


def pod(name: str = "web-0", **spec: Any) -> Pod:
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": "ns", "uid": "u"},
         "spec": {"containers": [{"name": "c"}], **spec}},
        Pod,
    )  # fmt: skip


def test_hostnames() -> None:
    assert pod_hostname(pod()) == ("web-0", "")
    sts = pod(hostname="web-0", subdomain="nginx")
    assert pod_hostname(sts) == ("web-0", "web-0.nginx.ns.svc.cluster.local")
    assert pod_hostname(pod(hostname="web-0", subdomain="nginx", setHostnameAsFQDN=True))[0] == (
        "web-0.nginx.ns.svc.cluster.local"
    )
    assert pod_hostname(pod("a" * 62 + "-b"))[0] == "a" * 62
    assert pod_hostname(pod(hostNetwork=True), "node1") == ("node1", "")


def test_hosts_file() -> None:
    text = hosts_file(
        pod(hostname="web-0", subdomain="nginx",
            hostAliases=[{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}]),
        ["10.1.0.5"],
    )  # fmt: skip
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.1.0.5\tweb-0.nginx.ns.svc.cluster.local\tweb-0\n" in text
    assert text.endswith("# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n")
    assert hosts_file(pod(hostNetwork=True), [], "host file\n") == "host file\n"


def test_resolv_conf() -> None:
    host = "# c\nnameserver 1.1.1.1\nsearch example.com\noptions edns0\n"
    assert resolv_conf(pod(), host) == "nameserver 1.1.1.1\nsearch example.com\noptions edns0\n"
    cluster = resolv_conf(pod(), host, ["10.96.0.10"])
    assert "nameserver 10.96.0.10" in cluster and "ns.svc.cluster.local" in cluster
    none = pod(
        dnsPolicy="None",
        dnsConfig={"nameservers": ["8.8.8.8"], "options": [{"name": "ndots", "value": "2"}]},
    )
    assert resolv_conf(none, host) == "nameserver 8.8.8.8\noptions ndots:2\n"


def test_ip_allocation() -> None:
    assert gateway_of("10.88.0.0/24") == ("10.88.0.1", 24)
    assert next_free_ip("10.88.0.0/24", []) == "10.88.0.2"
    assert next_free_ip("10.88.0.0/24", ["10.88.0.2"]) == "10.88.0.3"
    assert next_free_ip("10.88.0.0/24", [], after="10.88.0.7") == "10.88.0.8"
    assert next_free_ip("10.88.0.0/24", [], after="10.88.0.254") == "10.88.0.2"
    with pytest.raises(AllocationError):
        next_free_ip("10.88.0.0/30", ["10.88.0.2"])


def test_names_fit_kernel_limits() -> None:
    assert len(veth_name("some-very-long-uid-0000000000")) <= 15
    assert container_id("pb", "uid", "my app", 2).endswith("-my_app-2")
