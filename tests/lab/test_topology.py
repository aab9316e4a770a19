"""Topology files: expansion like Kubernetes, and one-line errors with file, line and expectation."""

import subprocess
import sys

import pytest

from lab.names import device_name, expand_replicas
from lab.topology import TopologyError, load_topology, parse_topology

REPO = __file__.rsplit("/tests/", 1)[0]


def error_of(text: str, tmp_path) -> str:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    message = str(err.value)
    assert "\n" not in message
    return message.replace(str(path), "FILE")


def test_bad_yaml_names_file_and_line(tmp_path):
    msg = error_of("name: x\npods:\n  - name: a\n    labels: {app: [\n", tmp_path)
    assert msg.startswith("FILE:5: bad YAML"), msg


def test_unknown_field_names_line_and_allowed_fields(tmp_path):
    msg = error_of("name: x\npods:\n  - name: a\n    replica: 2\n", tmp_path)
    assert msg.startswith("FILE:4: unknown field 'replica' in pods[0]"), msg
    assert "replicas" in msg


def test_bad_cidr_names_line_and_expected_form(tmp_path):
    msg = error_of("name: x\npodCIDR:\n  ipv4: 10.244.0.0/33\n", tmp_path)
    assert msg.startswith("FILE:3: podCIDR.ipv4: bad CIDR '10.244.0.0/33'"), msg
    assert "IPv4 network" in msg
    msg = error_of("name: x\npodCIDR: {ipv6: 10.0.0.0/8}\n", tmp_path)
    assert "bad CIDR '10.0.0.0/8'" in msg and "IPv6" in msg


def test_other_errors(tmp_path):
    assert "unknown node 'c'" in error_of("name: x\nnodes: [a, b]\npods: [{name: p, node: c}]\n", tmp_path)
    assert "expected a mapping" in error_of("- just\n- a list\n", tmp_path)
    assert "missing field 'name'" in error_of("pods: []\n", tmp_path)
    assert "kind: Deployment" in error_of("name: x\npods: [{name: p, replicas: 2}]\n", tmp_path)
    with pytest.raises(TopologyError, match=r"nope\.yaml: no such topology file"):
        load_topology(tmp_path / "nope.yaml")


def test_cli_prints_one_line_error_for_unknown_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowscope", "lab", "up", "-f", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"flowscope lab: error: {tmp_path}/nope.yaml: no such topology file "
        f"(expected a YAML file such as deploy/lab/demo.yaml)"]


def test_replicas_are_named_and_labelled_like_kubernetes():
    top = parse_topology({"name": "x", "nodes": ["node-a", "node-b"], "pods": [
        {"name": "backend", "namespace": "shop", "kind": "Deployment", "replicas": 3,
         "labels": {"app": "backend"}, "nodes": ["node-a", "node-b"]},
        {"name": "db", "kind": "StatefulSet", "replicas": 2}]})
    backend = expand_replicas(top.pods[0])
    assert [p.node for p in backend] == ["node-a", "node-b", "node-a"]
    hashes = {p.labels["pod-template-hash"] for p in backend}
    assert len(hashes) == 1 and len(hashes.pop()) == 10
    for p in backend:
        prefix, template_hash, suffix = p.name.rsplit("-", 2)
        assert (prefix, template_hash, len(suffix)) == ("backend", p.labels["pod-template-hash"], 5)
        assert p.labels["app"] == "backend"
    assert len({p.name for p in backend}) == 3
    db = expand_replicas(top.pods[1])
    assert [p.name for p in db] == ["db-0", "db-1"]
    assert db[1].labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert top.namespaces["shop"] == {"kubernetes.io/metadata.name": "shop"}
    # Same topology, same names (the demo is reproducible); devices fit IFNAMSIZ.
    assert [p.name for p in expand_replicas(top.pods[0])] == [p.name for p in backend]
    assert len(device_name("a-long-lab-name", "shop", backend[0].name)) <= 15


def test_shipped_topologies_load():
    demo = load_topology(f"{REPO}/deploy/lab/demo.yaml")
    assert {p.name for p in demo.pods} == {"coredns", "frontend", "backend", "database"}
    assert [p.replicas for p in demo.pods if p.name == "backend"] == [2]
    two = load_topology(f"{REPO}/deploy/lab/two-nodes.yaml")
    assert two.nodes == ("node-a", "node-b")
