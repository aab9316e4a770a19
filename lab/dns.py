"""Cluster DNS for the lab: dnsmasq in the pod marked `clusterDNS: true`, answering from a hosts file
with Kubernetes-style names, and each lab host's /etc/resolv.conf (which `ip netns exec` bind-mounts
from /etc/netns/<netns>/resolv.conf).

Names served:
  <pod>.<namespace>.pod.cluster.local            every pod
  <workload>.<namespace>.svc.cluster.local       every workload (headless: all its pods' addresses)
  <pod>.<workload>.<namespace>.svc.cluster.local StatefulSet pods
  <service>.<namespace>.svc.cluster.local        services from the topology (pods their selector matches)
  the world hosts' dnsNames
"""

from __future__ import annotations

import pathlib
import shlex
from collections import defaultdict

from lab.state import HostState
from lab.topology import ServiceSpec

CLUSTER_DOMAIN = "cluster.local"
ETC_NETNS = "/etc/netns"


def dns_records(hosts: list[HostState], services: tuple[ServiceSpec, ...]) -> dict[str, list[str]]:
    """name -> addresses (IPv4 and IPv6)."""
    records: dict[str, list[str]] = defaultdict(list)
    for h in hosts:
        addrs = [h.ipv4, h.ipv6]
        if h.kind == "world":
            for name in h.dns_names:
                records[name] += addrs
            continue
        records[f"{h.name}.{h.namespace}.pod.{CLUSTER_DOMAIN}"] += addrs
        if h.workload_name:
            records[f"{h.workload_name}.{h.namespace}.svc.{CLUSTER_DOMAIN}"] += addrs
        if h.workload_kind == "StatefulSet":
            records[f"{h.name}.{h.workload_name}.{h.namespace}.svc.{CLUSTER_DOMAIN}"] += addrs
    for svc in services:
        name = f"{svc.name}.{svc.namespace}.svc.{CLUSTER_DOMAIN}"
        records[name] = [a for h in hosts if h.kind == "pod" and h.namespace == svc.namespace
                         and all(h.labels.get(k) == v for k, v in svc.selector.items())
                         for a in (h.ipv4, h.ipv6)]
    return dict(records)


def write_hosts_file(path: str, records: dict[str, list[str]]) -> None:
    lines = [f"{addr} {name}" for name, addrs in sorted(records.items()) for addr in addrs]
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def dnsmasq_command(hosts_file: str) -> str:
    """Foreground dnsmasq answering only from the lab's hosts file; unknown cluster names -> NXDOMAIN."""
    return " ".join([
        "exec dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts",
        f"--addn-hosts={shlex.quote(hosts_file)}", f"--local=/{CLUSTER_DOMAIN}/",
        "--pid-file= --user=root --group=root --log-facility=- --cache-size=0",
    ])


def resolv_conf_path(netns: str) -> pathlib.Path:
    return pathlib.Path(ETC_NETNS) / netns / "resolv.conf"


def write_resolv_conf(host: HostState, nameservers: list[str]) -> None:
    namespace = host.namespace or "default"
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    path = resolv_conf_path(host.netns)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"search {search}\n" + "".join(f"nameserver {ns}\n" for ns in nameservers)
                    + "options ndots:5\n")


def remove_netns_etc(netns: str) -> None:
    directory = pathlib.Path(ETC_NETNS) / netns
    for f in directory.glob("*"):
        f.unlink(missing_ok=True)
    if directory.exists():
        directory.rmdir()
