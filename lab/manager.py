"""`lab up`, `lab down` and `lab status` as functions (the CLI and the test fixture both call these)."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
from dataclasses import dataclass

from lab import dns, netdev, processes
from lab.addresses import Pool, used_addresses
from lab.names import device_name, expand_replicas, netns_name
from lab.state import (DnsState, HostState, LabState, load_state, state_files, state_lock, state_path)
from lab.topology import Topology

log = logging.getLogger(__name__)


def up(topology: Topology, state_dir: str | None = None) -> LabState:
    """Build the lab. An existing lab of the same name is removed first, so `lab up` is repeatable."""
    path = state_path(topology.name, state_dir)
    if os.path.exists(path):
        log.info("lab %s is already up; recreating it", topology.name)
        down(path)
    with state_lock(state_dir):
        used = used_addresses(state_dir, exclude_lab=topology.name)
        state = LabState(name=topology.name, topology=topology.source, nodes=list(topology.nodes),
                         run_dir=os.path.join(os.path.dirname(path), topology.name), path=path,
                         hosts=_plan_hosts(topology, used))
        # Recorded before anything exists: a crash from here on leaves a state file `lab down` can use.
        state.save()
    try:
        netdev.create_hosts(state.hosts)
        index = netdev.ifindexes()
        for h in state.hosts:
            h.ifindex = index.get(h.device, 0)
        _setup_dns(state, topology)
        _start_commands(state)
    except BaseException:
        down(path)
        raise
    state.save()
    log.info("lab %s is up: %d pods, %d world hosts (state %s)", state.name, len(state.pods),
             len(state.world), path)
    return state


def _plan_hosts(topology: Topology, used: set[str]) -> list[HostState]:
    pods = Pool(topology.pod_cidr_v4, topology.pod_cidr_v6, used)
    hosts = []
    for spec in topology.pods:
        for replica in expand_replicas(spec):
            ipv4, ipv6 = pods.take()
            hosts.append(HostState(
                kind="pod", name=replica.name, namespace=spec.namespace, labels=replica.labels,
                namespace_labels=topology.namespaces.get(spec.namespace, {}),
                workload_name=spec.name if spec.kind != "Pod" else "",
                workload_kind=spec.kind if spec.kind != "Pod" else "",
                service_account=spec.service_account, node=replica.node,
                netns=netns_name(topology.name, spec.namespace, replica.name),
                device=device_name(topology.name, spec.namespace, replica.name),
                ipv4=ipv4, ipv6=ipv6, cluster_dns=spec.cluster_dns, processes=[
                    processes.Process(command=c) for c in spec.commands]))
    world = Pool(topology.world_cidr_v4, topology.world_cidr_v6, used)
    for spec in topology.world:
        ipv4, ipv6 = world.claim(f"world host {spec.name}", spec.ipv4, spec.ipv6)
        hosts.append(HostState(
            kind="world", name=spec.name, netns=netns_name(topology.name, "world", spec.name),
            device=device_name(topology.name, "world", spec.name), ipv4=ipv4, ipv6=ipv6,
            dns_names=list(spec.dns_names), processes=[processes.Process(command=c) for c in spec.commands]))
    return hosts


def _setup_dns(state: LabState, topology: Topology) -> None:
    server = next((h for h in state.pods if h.cluster_dns), None)
    if server is None:
        return
    pathlib.Path(state.run_dir).mkdir(parents=True, exist_ok=True)
    hosts_file = os.path.join(state.run_dir, "hosts")
    dns.write_hosts_file(hosts_file, dns.dns_records(state.hosts, topology.services))
    state.dns = DnsState(ipv4=server.ipv4, ipv6=server.ipv6, hosts_file=hosts_file)
    server.processes.insert(0, processes.Process(command=dns.dnsmasq_command(hosts_file)))
    for h in state.hosts:
        dns.write_resolv_conf(h, [server.ipv4, server.ipv6])


def _start_commands(state: LabState) -> None:
    if not any(h.processes for h in state.hosts):
        return
    pathlib.Path(state.run_dir).mkdir(parents=True, exist_ok=True)
    for h in state.hosts:
        log_path = os.path.join(state.run_dir, f"{h.netns}.log")
        h.processes = [processes.start(h, p.command, log_path) for p in h.processes]
        # Save after each host: a crash mid-way still leaves the pids that are running.
        state.save()


def down(path: str) -> LabState:
    """Remove everything the lab's state file records. Safe to repeat and after a crash."""
    state = load_state(path)
    live_netns = netdev.existing_netns()
    stragglers = [pid for h in state.hosts if h.netns in live_netns for pid in processes.netns_pids(h.netns)]
    processes.stop([p for h in state.hosts for p in h.processes], stragglers)
    netdev.delete_hosts(state.hosts)
    for h in state.hosts:
        dns.remove_netns_etc(h.netns)
    shutil.rmtree(state.run_dir, ignore_errors=True)
    pathlib.Path(path).unlink(missing_ok=True)
    log.info("lab %s is down", state.name)
    return state


def down_all(state_dir: str | None = None) -> list[LabState]:
    return [down(path) for path in state_files(state_dir)]


@dataclass
class HostStatus:
    host: HostState
    present: bool  # its namespace and device exist
    running: list[bool]  # per recorded process


def status(path: str) -> tuple[LabState, list[HostStatus]]:
    state = load_state(path)
    live_netns = netdev.existing_netns()
    devices = netdev.ifindexes()
    return state, [HostStatus(host=h, present=h.netns in live_netns and h.device in devices,
                              running=[processes.is_running(p) for p in h.processes])
                   for h in state.hosts]
