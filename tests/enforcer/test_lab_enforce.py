"""Enforcement on real lab traffic: policies applied with `flowscope policy apply` into the running
datapath's pinned maps; drops are flows naming the policy and both ends' labels."""

import signal
import subprocess
import sys
import time

import pytest

from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening
from tests.fixtures.datapath import unique_pin_dir

ECHO = ("import socket,threading\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0',7000)); s.listen()\n"
        "def serve(c):\n"
        "    while (d:=c.recv(100)): c.sendall(d)\n"
        "while True: threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()\n")
# Holds one connection to backend:7000, echoing once every 0.1 s until told to stop; prints its count.
HOLD = ("import socket,sys\n"
        "c=socket.create_connection((sys.argv[1],7000),timeout=3); print('connected', flush=True); n=0\n"
        "import select\n"
        "while not select.select([sys.stdin],[],[],0.1)[0]:\n"
        "    c.sendall(b'ping'); assert c.recv(4)==b'ping'; n+=1\n"
        "print(n, flush=True)\n")

TOPOLOGY = {
    "namespaces": {"shop": {"labels": {"team": "shop"}}, "data": {"labels": {"team": "data"}}},
    "pods": [
        {"name": "frontend", "namespace": "shop", "kind": "Deployment", "labels": {"app": "frontend"}},
        {"name": "backend", "namespace": "shop", "kind": "Deployment", "labels": {"app": "backend"},
         "commands": ["exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 8080 --name backend",
                      f"exec $FLOWSCOPE_PYTHON -c \"{ECHO}\""]},
        {"name": "database", "namespace": "data", "kind": "StatefulSet", "labels": {"app": "database"},
         "command": "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 6379 --name database"},
    ],
}

BACKEND_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}, {port: 7000}]
"""
DATABASE_POLICY = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: database-ingress, namespace: data}
spec:
  endpointSelector: {matchLabels: {app: database}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: backend, k8s:io.kubernetes.pod.namespace: shop}}]
    toPorts: [{ports: [{port: "6379", protocol: TCP}]}]
"""
FRONTEND_DENY = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-no-backend, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egressDeny:
  - toEndpoints: [{matchLabels: {app: backend}}]
"""


def reach(lab, pod: str, ip: str, port: int, timeout: float = 1.5) -> bool:
    code = lab.exec(pod, ["curl", "-s", "-o", "/dev/null", "--max-time", str(timeout), f"http://{ip}:{port}/"]).returncode
    return code == 0


def connects(lab, pod: str, ip: str, port: int) -> bool:
    prog = f"import socket; socket.create_connection(('{ip}', {port}), timeout=1.5)"
    return lab.exec(pod, [sys.executable, "-c", prog]).returncode == 0


def wait_attached(collector: subprocess.Popen, timeout: float) -> None:
    """Until `flowscope collector` logs that its programs are on the pod devices (reads its stderr)."""

    def attached_line() -> bool:
        line = collector.stderr.readline()
        assert line, f"the collector exited ({collector.poll()})"
        return "pod devices attached" in line

    wait_for(attached_line, timeout, "the collector to log 'pod devices attached'", interval=0)


def policy_drop(pod_ip: str, port: int):
    return lambda f: (f.verdict == flow_pb2.DROPPED and f.IP.destination == pod_ip
                      and f.l4.TCP.destination_port == port and f.drop_reason_desc == flow_pb2.POLICY_DENIED)


@pytest.fixture
def shop(lab_factory, enforced_collector, tmp_path):
    lab = lab_factory(TOPOLOGY)
    for pod, port in (("backend", 8080), ("backend", 7000), ("database", 6379)):
        wait_listening(lab, pod, port)
    run = enforced_collector(lab)
    files = tmp_path / "policies"
    files.mkdir()
    (files / "backend.yaml").write_text(BACKEND_POLICY)
    (files / "database.yaml").write_text(DATABASE_POLICY)
    return lab, run, files


@pytest.mark.root
def test_allow_frontend_to_backend_only_and_drops_name_policy_and_labels(shop, policy_cli):
    lab, run, files = shop
    backend, database = lab.pod("backend"), lab.pod("database")
    assert reach(lab, "frontend", database.ipv4, 6379), "before any policy everything flows"
    out = policy_cli("apply", str(files), pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    assert "applied 2 policies" in out.stdout and "2 endpoints enforced" in out.stdout
    assert reach(lab, "frontend", backend.ipv4, 8080)
    assert not reach(lab, "frontend", database.ipv4, 6379)
    assert reach(lab, "backend", database.ipv4, 6379)
    drops = run.wait_for(policy_drop(database.ipv4, 6379), timeout=5)
    assert drops, "the denied connection is reported as a drop"
    drop = drops[0]
    assert drop.verdict == flow_pb2.DROPPED and drop.drop_reason_desc == flow_pb2.POLICY_DENIED
    assert [(p.name, p.namespace, p.kind) for p in drop.ingress_denied_by] == [
        ("database-ingress", "data", "CiliumNetworkPolicy")]
    assert "k8s:app=frontend" in drop.source.labels and "k8s:app=database" in drop.destination.labels
    assert drop.source.identity >= 256 and drop.destination.identity >= 256
    allowed = run.wait_for(lambda f: f.IP.destination == backend.ipv4 and len(f.ingress_allowed_by) > 0)
    assert allowed and allowed[0].ingress_allowed_by[0].name == "backend-ingress"

    # An explicit deny on the frontend's egress: dropped at the frontend, POLICY_DENY, egress_denied_by.
    (files / "frontend.yaml").write_text(FRONTEND_DENY)
    policy_cli("apply", str(files / "frontend.yaml"), pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    assert not reach(lab, "frontend", backend.ipv4, 8080)
    denied = run.wait_for(lambda f: f.verdict == flow_pb2.DROPPED and f.drop_reason_desc == flow_pb2.POLICY_DENY
                          and f.IP.destination == backend.ipv4)
    assert denied and [p.name for p in denied[0].egress_denied_by] == ["frontend-no-backend"]


@pytest.mark.root
def test_established_connection_survives_a_policy_update(shop, policy_cli):
    lab, run, files = shop
    backend = lab.pod("backend")
    policy_cli("apply", str(files / "backend.yaml"), pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    client = lab.popen("frontend", [sys.executable, "-c", HOLD, backend.ipv4], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "connected"
        time.sleep(0.5)
        # The update allows only 8080: new connections to 7000 are denied, the established one goes on.
        (files / "backend.yaml").write_text(BACKEND_POLICY.replace(", {port: 7000}", ""))
        policy_cli("apply", str(files / "backend.yaml"), pin_dir=run.pin_dir, lab=lab,
                   identity_state=run.identity_state)
        assert not connects(lab, "frontend", backend.ipv4, 7000)
        time.sleep(1.0)
        client.stdin.write("stop\n")
        client.stdin.flush()
        count = int(client.stdout.readline())
        assert client.wait(timeout=10) == 0, "the established connection kept working through the update"
        assert count >= 5, "echoes went on over the held connection"
    finally:
        client.kill()


@pytest.mark.root
def test_audit_mode_forwards_and_reports_audit(shop, policy_cli):
    lab, run, files = shop
    database = lab.pod("database")
    out = policy_cli("apply", "--audit", str(files / "database.yaml"), pin_dir=run.pin_dir, lab=lab,
                     identity_state=run.identity_state)
    assert "1 endpoints audited (none enforced)" in out.stdout and "enforced," not in out.stdout
    assert reach(lab, "frontend", database.ipv4, 6379), "audit mode lets the traffic through"
    audited = run.wait_for(lambda f: f.verdict == flow_pb2.AUDIT and f.IP.destination == database.ipv4)
    assert audited, "the connection a policy would deny is marked AUDIT"
    assert not run.snapshot(policy_drop(database.ipv4, 6379))
    out = policy_cli("list", pin_dir=run.pin_dir, lab=lab).stdout
    assert "audit    CiliumNetworkPolicy data/database-ingress" in out
    out = policy_cli("apply", str(files / "database.yaml"), pin_dir=run.pin_dir, lab=lab,
                     identity_state=run.identity_state)
    assert "1 endpoints enforced," in out.stdout
    assert not reach(lab, "frontend", database.ipv4, 6379), "re-applied in enforce mode"
    out = policy_cli("mode", "data", "audit", pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    assert "namespace data: audit (1 pods under policy)" in out.stdout
    assert reach(lab, "frontend", database.ipv4, 6379), "the namespace is in audit mode"
    policy_cli("mode", "data", "enforce", pin_dir=run.pin_dir, lab=lab, identity_state=run.identity_state)
    assert not reach(lab, "frontend", database.ipv4, 6379)
    policy_cli("remove", "database-ingress", pin_dir=run.pin_dir, lab=lab)
    assert "no policies applied" in policy_cli("list", pin_dir=run.pin_dir, lab=lab).stdout
    assert reach(lab, "frontend", database.ipv4, 6379), "removed: unrestricted again"


@pytest.mark.root
def test_collector_killed_while_deny_applied_stays_denied(lab_factory, enforced_collector, policy_cli, tmp_path):
    lab = lab_factory(TOPOLOGY)
    database = lab.pod("database")
    wait_listening(lab, "database", 6379)
    pin_dir = unique_pin_dir()
    (tmp_path / "database.yaml").write_text(DATABASE_POLICY)
    first = subprocess.Popen([sys.executable, "-m", "flowscope", "collector", "--pin-dir", pin_dir,
                              "--listen-address", "", "--unix-socket", "", "--lab-state", lab.state_path],
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(first, 60)
        policy_cli("apply", str(tmp_path / "database.yaml"), pin_dir=pin_dir, lab=lab)
        assert not reach(lab, "frontend", database.ipv4, 6379)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # No collector at all now: the pinned programs and maps keep enforcing.
    for _ in range(3):
        assert not reach(lab, "frontend", database.ipv4, 6379, timeout=1)
    assert reach(lab, "backend", database.ipv4, 6379)
    run = enforced_collector(lab, pin_dir=pin_dir)
    assert not reach(lab, "frontend", database.ipv4, 6379)
    drops = run.wait_for(policy_drop(database.ipv4, 6379), timeout=5)
    assert drops and drops[0].ingress_denied_by[0].name == "database-ingress"
