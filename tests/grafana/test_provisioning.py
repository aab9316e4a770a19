"""The committed Grafana and Prometheus files: generated from the one generator, consistent, valid."""

import json
import subprocess
import sys

import yaml

from tests.grafana.dashboards import GENERATOR, generate

DEPLOY = GENERATOR.parents[1]


def test_committed_files_are_what_the_generator_makes():
    stale = generate.stale_files()
    assert not stale, f"run deploy/grafana/generate.py: out of date {[str(p) for p in stale]}"
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dashboards_use_the_provisioned_datasources():
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/flowscope.yaml").read_text())
    uids = {ds["uid"]: ds["type"] for ds in provisioned["datasources"]}
    assert set(uids.values()) == {"prometheus", "grafana-clickhouse-datasource", "yesoreyeram-infinity-datasource"}
    titles = set()
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] == path.stem
        titles.add(dashboard["title"])
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{path.name}: {panel['title']} leaves the grid"
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert uids[target["datasource"]["uid"]] == target["datasource"]["type"]
                assert target.get("expr") or target.get("rawSql") or target.get("url", "").startswith("/api/v1/")
    assert titles == {"flowscope / Cluster overview", "flowscope / Service map", "flowscope / HTTP golden signals",
                      "flowscope / DNS", "flowscope / Policy verdicts", "flowscope / Health",
                      "flowscope / Embedded store (JSON API)"}


def test_service_maps_are_node_graphs_with_nodes_and_edges_queries():
    for uid in ("flowscope-service-map", "flowscope-embedded"):
        dashboard = json.loads((DEPLOY / f"grafana/dashboards/{uid}.json").read_text())
        node_graph = [p for p in dashboard["panels"] if p["type"] == "nodeGraph"]
        assert len(node_graph) == 1 and len(node_graph[0]["targets"]) == 2


def test_prometheus_config_and_rules_are_valid():
    result = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 rules found" in result.stdout + result.stderr
