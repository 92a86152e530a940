"""Pure: the files kubelet writes for a pod sandbox (hostname, /etc/hosts,
resolv.conf), the pod's IP allocation from the node's pod CIDR, and the
short names (network namespace, veth, runc ids) derived from a pod uid.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Collection

from podmodel.pod import Pod

HOSTNAME_MAX = 63
CLUSTER_DOMAIN = "cluster.local"


class AllocationError(Exception):
    """The pod CIDR has no free address."""


def pod_hostname(pod: Pod, node_hostname: str = "") -> tuple[str, str]:
    """(hostname, fqdn) as kubelet's GeneratePodHostNameAndDomain: spec.hostname
    or the pod name (truncated to 63, trailing '-' / '.' removed); the fqdn
    `<hostname>.<subdomain>.<ns>.svc.<domain>` when a subdomain is set;
    setHostnameAsFQDN makes the fqdn the hostname. hostNetwork: the node's."""
    spec = pod.spec
    if spec.host_network:
        return node_hostname, ""
    name = spec.hostname or pod.metadata.name
    if len(name) > HOSTNAME_MAX:
        name = name[:HOSTNAME_MAX].rstrip("-.")
    fqdn = ""
    if spec.subdomain:
        fqdn = f"{name}.{spec.subdomain}.{pod.metadata.namespace}.svc.{CLUSTER_DOMAIN}"
    if spec.set_hostname_as_fqdn and fqdn:
        return fqdn[:64], fqdn
    return name, fqdn


def hosts_file(pod: Pod, pod_ips: Collection[str], host_hosts: str = "") -> str:
    """kubelet's managed /etc/hosts (hostNetwork: the node's own file)."""
    if pod.spec.host_network:
        return host_hosts
    hostname, fqdn = pod_hostname(pod)
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    for ip in pod_ips:
        lines.append(f"{ip}\t{fqdn}\t{hostname}" if fqdn else f"{ip}\t{hostname}")
    if pod.spec.host_aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in pod.spec.host_aliases:
            lines.append(f"{alias.ip}\t" + "\t".join(alias.hostnames))
    return "\n".join(lines) + "\n"


def resolv_conf(pod: Pod, host_resolv: str, cluster_dns: Collection[str] = ()) -> str:
    """The pod's resolv.conf by dnsPolicy: Default and, with no cluster DNS
    configured (as kubelet falls back), ClusterFirst use the node's file;
    None uses dnsConfig only; dnsConfig is merged in every case."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "ClusterFirstWithHostNet" and not spec.host_network:
        policy = "ClusterFirst"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        nameservers = list(cluster_dns)
        ns = pod.metadata.namespace
        searches = [f"{ns}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = ["ndots:5"]
    elif policy != "None":
        for line in host_resolv.splitlines():
            parts = line.split()
            if not parts or parts[0].startswith(("#", ";")):
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                nameservers.append(parts[1])
            elif parts[0] in ("search", "domain"):
                searches.extend(parts[1:])
            elif parts[0] == "options":
                options.extend(parts[1:])
    cfg = spec.dns_config
    if cfg is not None:
        nameservers.extend(n for n in cfg.nameservers if n not in nameservers)
        searches.extend(s for s in cfg.searches if s not in searches)
        for opt in cfg.options:
            text = opt.name + (f":{opt.value}" if opt.value is not None else "")
            options = [o for o in options if o.split(":", 1)[0] != opt.name]
            options.append(text)
    out = [f"nameserver {n}" for n in nameservers[:3]]
    if searches:
        out.append("search " + " ".join(searches[:32]))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def gateway_of(cidr: str) -> tuple[str, int]:
    """The bridge's address (the first host of the CIDR) and the prefix length."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses < 4:
        raise AllocationError(f"pod CIDR {cidr} is too small")
    return str(net.network_address + 1), net.prefixlen


def next_free_ip(cidr: str, taken: Collection[str], after: str = "") -> str:
    """The next free pod address after `after` (round robin, as host-local
    IPAM), skipping the network, gateway and broadcast addresses."""
    net = ipaddress.ip_network(cidr, strict=False)
    first = int(net.network_address) + 2
    last = int(net.broadcast_address) - 1
    size = last - first + 1
    if size <= 0:
        raise AllocationError(f"pod CIDR {cidr} has no pod addresses")
    start = first
    if after:
        a = int(ipaddress.ip_address(after))
        if first <= a <= last:
            start = a + 1 if a < last else first
    used = set(taken)
    for i in range(size):
        candidate = str(ipaddress.ip_address(first + (start - first + i) % size))
        if candidate not in used:
            return candidate
    raise AllocationError(f"pod CIDR {cidr} is full ({size} addresses in use)")


def short_id(uid: str, n: int = 10) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:n]


def netns_name(prefix: str, uid: str) -> str:
    return f"{prefix}-{short_id(uid)}"


def veth_name(uid: str) -> str:
    """Host side of the pod's veth (<= 15 characters)."""
    return f"vpb{short_id(uid, 11)}"


_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def container_id(prefix: str, uid: str, name: str, attempt: int) -> str:
    """The runc container id of one attempt: prefix, pod, container, attempt."""
    return f"{prefix}-{short_id(uid, 12)}-{_ID_SAFE.sub('_', name)}-{attempt}"
