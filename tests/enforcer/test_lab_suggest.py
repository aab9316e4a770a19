"""The loop on real lab traffic: record normal traffic into storage, `policy suggest` from it, `policy
apply` the suggestion in enforce mode: normal traffic keeps flowing with zero drops, an intruder pod is
dropped, and `policy check` over the recorded window reports zero would-deny flows."""

import subprocess
import sys
import time

import pytest

from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening
from tests.fixtures.clickhouse import stored

TOPOLOGY = {
    "podCIDR": {"ipv4": "10.244.0.0/16", "ipv6": "fd00:10:244::/64"},
    "worldCIDR": {"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:100::/64"},
    "namespaces": {"shop": {"labels": {"team": "shop"}}, "data": {"labels": {"team": "data"}}, "kube-system": {}},
    "pods": [
        {"name": "coredns", "namespace": "kube-system", "kind": "Deployment", "labels": {"k8s-app": "kube-dns"},
         "clusterDNS": True},
        {"name": "frontend", "namespace": "shop", "kind": "Deployment", "labels": {"app": "frontend", "tier": "web"}},
        {"name": "backend", "namespace": "shop", "kind": "Deployment", "replicas": 2,
         "labels": {"app": "backend", "tier": "api"},
         "command": "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 8080 --name backend"},
        {"name": "database", "namespace": "data", "kind": "StatefulSet", "labels": {"app": "database"},
         "command": "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 6379 --name database"},
        {"name": "intruder", "namespace": "shop", "kind": "Pod", "labels": {"app": "intruder"}},
    ],
    "world": [{"name": "example-api", "dnsNames": ["api.example.com"],
               "command": "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 80 --name api.example.com"}],
}


def curl(lab, pod: str, url: str, timeout: float = 2.0) -> bool:
    return lab.exec(pod, ["curl", "-4", "-s", "-o", "/dev/null", "--max-time", str(timeout), url]).returncode == 0


def normal_traffic(lab) -> list[bool]:
    results = [curl(lab, "frontend", "http://backend:8080/api/users/7"),
               curl(lab, "frontend", "http://api.example.com/")]
    for replica in lab.pods("backend"):
        results.append(curl(lab, "frontend", f"http://{replica.ipv4}:8080/api/orders"))
        results.append(curl(lab, replica.name, "http://database.data.svc.cluster.local:6379/"))
    return results


def is_policy_drop(f: flow_pb2.Flow) -> bool:
    return f.verdict == flow_pb2.DROPPED and f.drop_reason_desc in (flow_pb2.POLICY_DENIED, flow_pb2.POLICY_DENY)


def cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "flowscope", "policy", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"flowscope policy {' '.join(args)}: {result.stderr}"
    return result


@pytest.mark.root
def test_suggest_from_recorded_traffic_then_enforce(lab_factory, enforced_collector, policy_cli, clickhouse_server,
                                                    server_database, tmp_path):
    lab = lab_factory(TOPOLOGY)
    for pod, port in (("backend", 8080), ("database", 6379), ("example-api", 80)):
        wait_listening(lab, pod, port)
    run = enforced_collector(lab, aggregation="max")
    since = time.time_ns()
    for _ in range(2):
        assert all(normal_traffic(lab))
    time.sleep(1.0)
    until = time.time_ns()

    url = f"{clickhouse_server.url}/{server_database}"
    stored(url, run.snapshot()).close()

    window = ["--since", _rfc3339(since - 1_000_000_000), "--until", _rfc3339(until)]
    out_dir = tmp_path / "suggested"
    suggested = cli("suggest", "--storage", url, *window, "--lab-state", lab.state_path, "-o", str(out_dir))
    assert "flows in the window (" in suggested.stderr and "% of the time window read" in suggested.stderr, \
        "progress is shown, and ends with what was read"
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["data-database.yaml", "kube-system-coredns.yaml", "shop-backend.yaml", "shop-frontend.yaml"], \
        suggested.stderr
    frontend = (out_dir / "shop-frontend.yaml").read_text()
    assert "k8s-app: kube-dns" in frontend and "port: 53" in frontend, "DNS by the DNS pods' own labels"
    assert f"cidr: {lab.pod('example-api').ipv4}/32" in frontend
    assert "pod-template-hash" not in "".join(p.read_text() for p in out_dir.iterdir())

    checked = cli("check", str(out_dir), "--storage", url, *window)
    assert " 0 would be denied" in checked.stdout, checked.stdout
    assert int(checked.stdout.split()[0]) >= 10, "the recorded connections were replayed"

    # Cilium format with L7: names for the world, generalised HTTP paths, and the same zero would-deny.
    cilium_dir = tmp_path / "cilium"
    cli("suggest", "--storage", url, *window, "--lab-state", lab.state_path, "--format", "cilium", "--l7",
        "-o", str(cilium_dir))
    backend = (cilium_dir / "shop-backend.yaml").read_text()
    assert "path: /api/users/[0-9]+" in backend and "method: GET" in backend, backend
    assert "matchName: api.example.com" in (cilium_dir / "shop-frontend.yaml").read_text()
    checked = cli("check", str(cilium_dir), "--storage", url, *window)
    assert " 0 would be denied, 0 allowed at L3/L4 but not by their L7 rules" in checked.stdout, checked.stdout

    policy_cli("apply", str(out_dir), pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    enforced_at = time.time_ns()
    for _ in range(2):
        assert all(normal_traffic(lab)), "normal traffic keeps working under the suggested policies"
    assert not curl(lab, "intruder", f"http://{lab.pod('backend').ipv4}:8080/", timeout=1)
    assert not curl(lab, "intruder", f"http://{lab.pod('database').ipv4}:6379/", timeout=1)
    time.sleep(0.5)
    after = run.snapshot(lambda f: f.time.seconds * 10**9 + f.time.nanos >= enforced_at and is_policy_drop(f))
    intruder_ip = lab.pod("intruder").ipv4
    assert after and all(f.IP.source == intruder_ip for f in after), \
        [(f.IP.source, f.IP.destination, f.Summary) for f in after if f.IP.source != intruder_ip]
    assert {f.IP.destination for f in after} == {lab.pod("backend").ipv4, lab.pod("database").ipv4}

    # The Cilium suggestion enforced instead: toFQDNs opens api.example.com's address.
    policy_cli("remove", "all", pin_dir=run.pin_dir, lab=lab)
    policy_cli("apply", str(cilium_dir), pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    switched_at = time.time_ns()
    assert all(normal_traffic(lab)), "normal traffic keeps working under the cilium suggestion"
    assert not curl(lab, "intruder", f"http://{lab.pod('database').ipv4}:6379/", timeout=1)
    time.sleep(0.5)
    after = run.snapshot(lambda f: f.time.seconds * 10**9 + f.time.nanos >= switched_at and is_policy_drop(f))
    assert after and all(f.IP.source == intruder_ip for f in after)


def _rfc3339(t_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ns // 10**9)) + f".{t_ns % 10**9:09d}Z"
