"""`flowscope policy suggest --server`: history read through a running relay's Observer API, for when
the relay holds the embedded store (chdb opens a directory in one process only)."""

import subprocess
import sys
import time

import yaml

from tests.relay.nodes import make_flow, storing_relay


def test_suggest_reads_history_through_the_relay(node_factory, relay_factory, relay_store):
    node = node_factory("node-a")
    t0 = time.time_ns() - 120 * 1_000_000_000
    flows = [make_flow(t0 + i * 1_000_000_000, "web-1", "db-0", port=5432) for i in range(20)]
    for flow in flows:
        flow.source.workloads.add(name="web", kind="Deployment")
        flow.destination.workloads.add(name="db", kind="StatefulSet")
    node.publish(*flows)
    running, writer = storing_relay(relay_factory, relay_store, node, 20)
    writer.flush()
    result = subprocess.run([sys.executable, "-m", "flowscope", "policy", "suggest", "--server", running.address,
                             "--since", "1h", "--format", "k8s"], capture_output=True, text=True, timeout=120)
    running.stop()
    writer.close()
    assert result.returncode == 0, result.stderr
    policies = [d for d in yaml.safe_load_all(result.stdout) if d]
    db = next(p for p in policies if p["spec"]["podSelector"]["matchLabels"] == {"app": "db"})
    (rule,) = db["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app": "web"}
