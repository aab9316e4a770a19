"""deploy/k8s renders offline with kubectl's kustomize and every object validates against the
Kubernetes OpenAPI schema of a current release; the security properties we promise hold."""

import os
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
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("cert-manager.io/v1", "Issuer"),
             ("cert-manager.io/v1", "Certificate")}
ROOT = pathlib.Path(__file__).parents[2]


def render(overlay: str | pathlib.Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required to render deploy/k8s (kustomize is built in)"
    path = overlay if isinstance(overlay, pathlib.Path) else ROOT / "deploy/k8s/overlays" / overlay
    out = subprocess.run([kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True,
                         cwd=ROOT).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def with_cert_manager(overlay: str, directory: pathlib.Path) -> list[dict]:
    """The overlay with components/cert-manager added, as a user's kustomization would add it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy/k8s/overlays" / overlay, directory)],
        "components": [os.path.relpath(ROOT / "deploy/k8s/components/cert-manager", directory)]}))
    return render(directory)


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request, tmp_path_factory):
    return with_cert_manager(request.param, tmp_path_factory.mktemp(request.param))


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
    # hostPID, SYS_PTRACE and IPC_LOCK: the TLS capture reads pod processes' /proc/PID/maps, opens their
    # libssl through /proc/PID/root and maps its own perf rings (tests/collector/tls/test_capabilities.py
    # runs the collector with exactly this set).
    assert sorted(container["securityContext"]["capabilities"]["add"]) == [
        "BPF", "IPC_LOCK", "NET_ADMIN", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE"]
    assert collector["spec"]["template"]["spec"]["hostPID"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/btf", "/lib/modules"} <= mounts
    assert container["readinessProbe"]["tcpSocket"]["port"] == 4244  # kubelet's gRPC probe speaks no TLS


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


def flowscope_containers(objects):
    """(workload, args) of each flowscope container, $(VAR)s filled from the ConfigMaps ("secret" for
    a Secret's)."""
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if not container["image"].startswith("ghcr.io/flowscope/"):
                continue
            env = {}
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("configMapKeyRef")
                env[var["name"]] = config_maps[ref["name"]][ref["key"]] if ref else "secret"
            yield workload, [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]


def test_every_flowscope_container_passes_arguments_the_cli_accepts(objects):
    """Manifests and the CLI must not drift apart: parse each container's args with flowscope's parser."""
    from collector.metrics.config import parse_specs
    from flowscope.cli import build_parser

    for _, args in flowscope_containers(objects):
        parsed = build_parser(args[0]).parse_args(args)  # argparse exits on an unknown flag
        if args[0] == "collector":
            assert parse_specs(parsed.metrics), "the collector's --metrics must name metrics"


def test_the_collector_captures_tls_unless_the_config_map_says_off(objects):
    """`l7-tls` in flowscope-config reaches the collector's --l7-tls; "off" is accepted too."""
    from flowscope.cli import build_parser

    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "flowscope-config"]
    assert config["data"]["l7-tls"] == "on"
    collector, _ = parsed_args(objects)["flowscope-collector"]
    assert collector.l7_tls == "on"
    ((_, args),) = [(w, a) for w, a in flowscope_containers(objects) if a[0] == "collector"]
    off = [a.replace("--l7-tls=on", "--l7-tls=off") for a in args]
    assert "--l7-tls=off" in off and build_parser("collector").parse_args(off).l7_tls == "off"


def parsed_args(objects) -> dict[str, tuple]:
    """(parsed args, workload) of each flowscope workload but the UI, by workload name."""
    from flowscope.cli import build_parser

    return {workload["metadata"]["name"]: (build_parser(args[0]).parse_args(args), workload)
            for workload, args in flowscope_containers(objects) if args[0] != "ui"}


def mounted_secret(workload: dict, path: str) -> str:
    """The Secret mounted at the directory of `path` in the workload's first container."""
    spec = workload["spec"]["template"]["spec"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    return next(v for v in spec["volumes"] if v["name"] == mount["name"])["secret"]["secretName"]


def test_mutual_tls_between_relay_and_collectors_and_no_plaintext_port(objects):
    from common.tls import is_loopback

    parsed = parsed_args(objects)
    collector, collector_workload = parsed["flowscope-collector"]
    assert not is_loopback(collector.listen_address) and not collector.disable_server_tls
    assert collector.tls_cert_file and collector.tls_key_file and collector.tls_client_ca_files
    assert mounted_secret(collector_workload, collector.tls_cert_file) == "flowscope-collector-server"
    relay, relay_workload = parsed["flowscope-relay"]
    assert not relay.disable_client_tls and relay.tls_hubble_server_ca_files
    assert mounted_secret(relay_workload, relay.tls_hubble_client_cert_file) == "flowscope-relay-client"
    # The relay's own clients need a certificate too (flowscope-cli-client).
    assert relay.tls_cert_file and relay.tls_client_ca_files and not relay.disable_server_tls
    assert mounted_secret(relay_workload, relay.tls_cert_file) == "flowscope-relay-server"


def test_cert_manager_issues_what_certs_generate_makes_and_the_manifests_mount(objects):
    from flowscope.commands.certs import LEAVES

    certificates = {o["spec"]["secretName"]: o["spec"] for o in objects if o["kind"] == "Certificate"}
    assert certificates.pop("flowscope-ca")["isCA"]
    assert set(certificates) == {f"flowscope-{leaf.name}" for leaf in LEAVES}
    for leaf in LEAVES:
        spec = certificates[f"flowscope-{leaf.name}"]
        assert tuple(spec["dnsNames"]) == leaf.dns_names and spec["commonName"] == leaf.common_name
        assert ("server auth" if leaf.server else "client auth") in spec["usages"]
        assert spec["issuerRef"] == {"name": "flowscope-ca", "kind": "Issuer"}
    mounted = {v["secret"]["secretName"] for w in workloads(objects)
               for v in w["spec"]["template"]["spec"].get("volumes", []) if "secret" in v}
    assert {n for n in mounted if n.startswith("flowscope-") and n.endswith(("-server", "-client"))} <= set(certificates)


def test_overlays_render_without_cert_manager_too():
    for overlay in OVERLAYS:
        assert not any(o["kind"] == "Certificate" for o in render(overlay))
