"""deploy/k8s renders offline with kubectl's kustomize and every object validates against the
Kubernetes OpenAPI schema of a current release; the security properties we promise hold."""

import pathlib
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

OVERLAYS = sorted(p.name for p in (pathlib.Path(__file__).parents[2] / "deploy/k8s/overlays").iterdir())
K8S_VERSION = "1.37.0"
# Custom resources have no schema in the Kubernetes release; checked structurally below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required to render deploy/k8s (kustomize is built in)"
    out = subprocess.run([kubectl, "kustomize", f"deploy/k8s/overlays/{overlay}"], check=True,
                         capture_output=True, text=True,
                         cwd=pathlib.Path(__file__).parents[2]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request):
    return render(request.param)


def test_there_are_three_overlays():
    assert OVERLAYS == ["clickhouse", "embedded", "external-clickhouse"]


def test_every_object_validates_against_the_kubernetes_schema(objects):
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def workloads(objects):
    return [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def test_every_container_has_probes_resources_and_a_security_context(objects):
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            where = f'{workload["kind"]}/{workload["metadata"]["name"]}/{container["name"]}'
            assert container.get("readinessProbe") and container.get("livenessProbe"), where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            security = container["securityContext"]
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security.get("privileged"), where


def test_collector_gets_only_the_bpf_capabilities_it_needs(objects):
    collector = next(o for o in objects if o["kind"] == "DaemonSet")
    container = collector["spec"]["template"]["spec"]["containers"][0]
    assert sorted(container["securityContext"]["capabilities"]["add"]) == [
        "BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/btf", "/lib/modules"} <= mounts
    probe = container["readinessProbe"]["grpc"]
    assert (probe["port"], probe["service"]) == (4244, "hubble.server.Observer")


def test_rbac_is_read_only(objects):
    for role in (o for o in objects if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]


def test_services_ports_and_service_monitor_match(objects):
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    assert [p["port"] for p in services["flowscope-relay"]["spec"]["ports"] if p["name"] == "grpc"] == [4245]
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    for name in selected:
        labels = services[name]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == name
        assert "metrics" in {p["name"] for p in services[name]["spec"]["ports"]}


def test_namespace_defaults_to_deny_ingress(objects):
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
               and not p["spec"].get("ingress") for p in policies)


def test_embedded_overlay_runs_one_process_on_a_volume():
    objects = render("embedded")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "flowscope-ui") not in kinds, "chdb allows one process per directory"
    relay = next(o for o in objects if o["kind"] == "Deployment")
    assert relay["spec"]["strategy"]["type"] == "Recreate"
    args = relay["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["up", "--no-collector"] and "--ui-address=0.0.0.0:8050" in args
    assert "--storage=chdb:///var/lib/flowscope/db" in args
    volumes = relay["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "flowscope-data"}} in volumes


def test_every_flowscope_container_passes_arguments_the_cli_accepts(objects):
    """Manifests and the CLI must not drift apart: parse each container's args with flowscope's parser."""
    from collector.metrics.config import parse_specs
    from flowscope.cli import build_parser

    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if not container["image"].startswith("ghcr.io/flowscope/"):
                continue
            env = {}
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("configMapKeyRef")
                env[var["name"]] = config_maps[ref["name"]][ref["key"]] if ref else "secret"
            args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
            parsed = build_parser(args[0]).parse_args(args)  # argparse exits on an unknown flag
            if args[0] == "collector":
                assert parse_specs(parsed.metrics), "the collector's --metrics must name metrics"
