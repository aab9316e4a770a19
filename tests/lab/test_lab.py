"""The lab on the real kernel: pods reach each other over IPv4 and IPv6, names resolve through the lab's
dnsmasq, and `lab down` leaves nothing behind — also after a crash."""

import json
import os
import signal
import subprocess
import sys

import pytest

import lab
from lab import processes
from tests.fixtures.lab import unique_lab_name
from lab.testbed.wait import wait_for

REPO = __file__.rsplit("/tests/", 1)[0]
pytestmark = pytest.mark.root

SHOP = {
    "namespaces": {"shop": {"labels": {"team": "shop"}}},
    "pods": [
        {"name": "dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}, "clusterDNS": True},
        {"name": "backend", "namespace": "shop", "kind": "Deployment", "replicas": 2,
         "labels": {"app": "backend"}, "command": "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 8080"},
        {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
    ],
    "services": [{"name": "api", "namespace": "shop", "selector": {"app": "backend"}}],
    "world": [{"name": "ext", "dnsNames": ["api.example.com"]}],
}


def leftovers(state: lab.LabState) -> list[str]:
    """Everything of `state` that still exists on the host."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True).stdout + \
        subprocess.run(["ip", "-6", "route", "show"], capture_output=True, text=True).stdout
    for h in state.hosts:
        found += [f"netns {h.netns}"] if h.netns in netns.split() else []
        found += [f"link {h.device}"] if f" {h.device}:" in links or f" {h.device}@" in links else []
        found += [f"route {a}" for a in (h.ipv4, h.ipv6) if f"{a} " in routes]
        found += [f"process {p.pid}" for p in h.processes if processes.is_running(p)]
        found += [f"/etc/netns/{h.netns}"] if os.path.exists(f"/etc/netns/{h.netns}") else []
    found += [p for p in (state.path, state.run_dir) if os.path.exists(p)]
    return found




def test_pods_reach_each_other_over_ipv4_and_ipv6(lab_factory):
    shop = lab_factory({"pods": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    a, b = shop.pod("a"), shop.pod("b")
    assert a.ipv4.startswith("10.244.") and a.ipv6.startswith("fd00:10:244::")
    for addr in (b.ipv4, b.ipv6):
        ping = shop.exec("a", ["ping", "-c1", "-W2", addr])
        assert ping.returncode == 0, ping.stdout + ping.stderr
    # The pod sees /32 and /128 on eth0 and routes everything via the host.
    addrs = shop.exec("a", ["ip", "-j", "addr", "show", "eth0"], check=True).stdout
    prefixes = {(i["local"], i["prefixlen"]) for i in json.loads(addrs)[0]["addr_info"] if i["scope"] == "global"}
    assert prefixes == {(a.ipv4, 32), (a.ipv6, 128)}
    routes = subprocess.run(["ip", "route", "show", f"{a.ipv4}/32"], capture_output=True, text=True).stdout
    assert f"dev {a.device}" in routes


def test_http_and_dns_through_the_lab_dnsmasq(lab_factory):
    shop = lab_factory(SHOP)
    backends = shop.pods("backend")
    assert len(backends) == 2
    assert all(b.labels["pod-template-hash"] and b.workload_kind == "Deployment" for b in backends)
    dig = shop.exec("client", ["dig", "+short", "backend.shop.svc.cluster.local", "A"], check=True)
    assert sorted(dig.stdout.split()) == sorted(b.ipv4 for b in backends)
    dig = shop.exec("client", ["dig", "+short", "backend.shop.svc.cluster.local", "AAAA"], check=True)
    assert sorted(dig.stdout.split()) == sorted(b.ipv6 for b in backends)
    dig = shop.exec("client", ["dig", "+short", "api.shop.svc.cluster.local"], check=True)
    assert sorted(dig.stdout.split()) == sorted(b.ipv4 for b in backends)
    pod_name = f"{backends[0].name}.shop.pod.cluster.local"
    assert shop.exec("client", ["dig", "+short", pod_name], check=True).stdout.split() == [backends[0].ipv4]
    assert shop.exec("client", ["dig", "+short", "api.example.com"], check=True).stdout.split() == \
        [shop.pod("ext").ipv4]
    nx = shop.exec("client", ["dig", "nothere.shop.svc.cluster.local"], check=True).stdout
    assert "status: NXDOMAIN" in nx
    # curl resolves the short name through resolv.conf's search path, over both families.
    for flag in ("-4", "-6"):
        assert wait_for(lambda: shop.exec("client", ["curl", "-s", "-o", "/dev/null", "--max-time", "2",
                                                      "http://backend:8080/"]).returncode == 0)
        curl = shop.exec("client", ["curl", flag, "-s", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                                    "http://backend:8080/api/error"], check=True)
        code, remote = curl.stdout.split()
        assert code == "500" and remote in {b.ipv4 if flag == "-4" else b.ipv6 for b in backends}
    world = shop.pod("ext")
    assert shop.exec("client", ["ping", "-c1", "-W2", world.ipv4]).returncode == 0


def test_endpoints_from_state_carry_labels_devices_and_nodes(lab_factory):
    shop = lab_factory({"nodes": ["node-a", "node-b"], "namespaces": {"shop": {"labels": {"team": "shop"}}},
                        "pods": [{"name": "web", "namespace": "shop", "kind": "Deployment", "replicas": 2,
                                  "labels": {"app": "web"}, "serviceAccount": "web",
                                  "nodes": ["node-a", "node-b"]}],
                        "world": [{"name": "ext"}]})
    endpoints = shop.endpoints()
    assert len(endpoints) == 2
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    ifindex = {link["ifname"]: link["ifindex"] for link in links}
    for ep in endpoints:
        pod = shop.pod(ep.pod_name)
        assert (ep.namespace, ep.device, ep.ifindex) == ("shop", pod.device, ifindex[pod.device])
        assert ep.ips == (pod.ipv4, pod.ipv6)
        assert ep.labels["app"] == "web" and ep.workload_name == "web" and ep.workload_kind == "Deployment"
        assert ep.namespace_labels == {"kubernetes.io/metadata.name": "shop", "team": "shop"}
        assert "k8s:io.cilium.k8s.policy.serviceaccount=web" in ep.hubble_labels()
    assert [e.node_name for e in shop.endpoints("node-b")] == ["node-b"]
    assert [w.name for w in shop.world_hosts()] == ["ext"]
    assert all(e.pod_name != "ext" for e in lab.endpoints_from_state())


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "flowscope", "lab", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_cli_up_status_down_leaves_nothing_behind(tmp_path):
    name = unique_lab_name()
    topology = tmp_path / "lab.yaml"
    topology.write_text(open(f"{REPO}/deploy/lab/demo.yaml").read().replace("name: demo\n", f"name: {name}\n"))
    up = run_cli("up", "-f", str(topology))
    try:
        assert up.returncode == 0, up.stderr
        state = lab.load_state(lab.state_path(name))
        assert len(state.pods) == 5 and len(state.world) == 1
        status = run_cli("status", "-f", str(topology))
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        for pod in state.pods:
            line = next(l for l in lines if f" {pod.name} " in l)
            assert pod.ipv4 in line and pod.device in line and " yes " in line
        frontend = next(p for p in state.pods if p.workload_name == "frontend")
        assert "app=frontend" in next(l for l in lines if frontend.name in l)
        # The demo's traffic is real: the backends' redis loop lands in the database.
        db = next(p for p in state.pods if p.workload_name == "database")
        assert wait_for(lambda: len(subprocess.run(["ip", "netns", "exec", db.netns, "redis-cli", "keys", "hits:*"],
                                                   capture_output=True, text=True).stdout.split()) == 2, 15)
    finally:
        down = run_cli("down", "-f", str(topology))
    assert down.returncode == 0, down.stderr
    assert leftovers(state) == []
    again = run_cli("down", "-f", str(topology))
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_down_after_a_crash_removes_everything(tmp_path):
    name = unique_lab_name()
    top = lab.parse_topology({"name": name, "pods": [
        {"name": "srv", "commands": ["exec sleep 600", "while true; do sleep 1; done"]},
        {"name": "cli"}]})
    state = lab.up(top)
    try:
        srv = next(h for h in state.hosts if h.name == "srv")
        assert all(processes.is_running(p) for p in srv.processes)
        # The crash: a command dies, something else starts in the pod, a namespace vanishes by hand.
        os.kill(srv.processes[0].pid, signal.SIGKILL)
        stray = subprocess.Popen(["ip", "netns", "exec", srv.netns, "sleep", "600"])
        subprocess.run(["ip", "netns", "del", f"{name}-default-cli"], check=True)
        down = run_cli("down", "--name", name)
    finally:
        if os.path.exists(state.path):
            lab.down(state.path)
    assert down.returncode == 0, down.stderr
    assert stray.wait(timeout=5) != 0
    assert leftovers(state) == []


def test_cli_up_refuses_to_recreate_a_watched_lab_unless_forced(tmp_path):
    """`lab up` of a lab that is up tears it down and recreates it; while a collector reads it as its
    endpoints (its feeder holds the state dir's watch lock) that pulls the pods from under it: refused
    with a one-line error, the lab left as it was; --force recreates it anyway."""
    from collector.agent import LabEndpointFeeder
    from common.endpoints import EndpointCache

    state_dir = tmp_path / "state"
    name = unique_lab_name()
    topology = tmp_path / "lab.yaml"
    topology.write_text(f"name: {name}\npods:\n  - {{name: web, namespace: shop, labels: {{app: web}}}}\n")
    up = run_cli("up", "-f", str(topology), "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    feeder = LabEndpointFeeder(EndpointCache("node-1"), None)
    try:
        before = lab.load_state(lab.state_path(name, str(state_dir)))
        feeder.path = before.path
        feeder.watch()
        again = run_cli("up", "-f", str(topology), "--state-dir", str(state_dir))
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"flowscope lab: error: lab {name} is up and a running collector or `flowscope up` is watching it "
            f"({before.path}): `lab up` would tear its pods down and recreate them under it; stop that first, "
            "or pass --force"]
        assert lab.load_state(before.path).pods[0].netns == before.pods[0].netns
        assert os.path.exists(f"/run/netns/{before.pods[0].netns}"), "the watched lab is untouched"
        forced = run_cli("up", "-f", str(topology), "--state-dir", str(state_dir), "--force")
        assert forced.returncode == 0, forced.stderr
        feeder.close()
        assert run_cli("up", "-f", str(topology), "--state-dir", str(state_dir)).returncode == 0, \
            "no watcher left: recreated as before"
    finally:
        feeder.close()
        down = run_cli("down", "--all", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
