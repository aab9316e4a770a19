"""No credential ships in deploy/: every password, token and key comes from a Secret the user creates.
Scans every file under deploy/ as text, and the rendered overlays as Kubernetes objects."""

import pathlib
import re

import pytest

from tests.deploy.test_k8s_manifests import OVERLAYS, render, workloads

DEPLOY = pathlib.Path(__file__).parents[2] / "deploy"
# a value that names where the secret comes from instead of holding it
PLACEHOLDER = re.compile(r"^(|\$\{[^}]*\}|\$\{\{[^}]*\}\}|\$\([A-Z_]+\)|\"\"|''|null|false|true|PASSWORD|\.\.\.)$")
SECRET_WORDS = r"(password|passwd|token|secret|api[_-]?key|credentials?)"
SECRET_KEY = re.compile(SECRET_WORDS, re.I)
# keys whose value names a Secret object (a volume's secretName), never holds one
REFERENCE_KEY = re.compile(r"(?i)^secretName$")
RULES = [
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a password in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:(?P<value>[^\s@/'\"]+)@")),
    ("a key: value secret", re.compile(r"(?im)^[\s-]*(?P<key>[\w.-]*" + SECRET_WORDS + r"[\w.-]*)\s*[:=]\s*"
                                       r"(?P<value>[^\s#]*)\s*(#.*)?$")),
    ("an XML secret", re.compile(r"(?i)<(?P<key>password|token|secret)>(?P<value>[^<]*)</")),
    ("a secretGenerator literal", re.compile(r"(?m)^\s*literals:\s*$")),
    ("a --flag=secret argument", re.compile(r"--(?P<key>[\w-]*(token|password|secret))=(?P<value>\S+)")),
]


def findings(text: str) -> list[str]:
    found = []
    for what, rule in RULES:
        for match in rule.finditer(text):
            value = match.groupdict().get("value")
            if value is not None and (PLACEHOLDER.match(value) or value.endswith(":")):
                continue  # e.g. `password: ${FLOWSCOPE_CLICKHOUSE_PASSWORD:-}`, `secretKeyRef:`
            if REFERENCE_KEY.match(match.groupdict().get("key") or ""):
                continue  # `secretName: flowscope-relay-server`
            found.append(f"{what}: {match.group(0).strip()[:80]!r}")
    return found


@pytest.mark.parametrize("sample, caught", [
    ("      - token=change-me\n", True),
    ("url=clickhouse://flowscope:change-me@host:9000/db\n", True),
    ("secretGenerator:\n  - name: x\n    literals:\n      - a=b\n", True),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcC\n", True),
    ("<password>hunter2</password>", True),
    ("  - --auth-token=s3cr3t-token\n", True),
    ("  CLICKHOUSE_PASSWORD: hunter2\n", True),
    ("      password: ${FLOWSCOPE_CLICKHOUSE_PASSWORD:-}\n", False),
    ("automountServiceAccountToken: false\n", False),
    ("                secretKeyRef:\n", False),
    ("<password></password>", False),
    ("            secretName: flowscope-collector-server\n", False),
    ("  secretNameHint: hunter2\n", True),
    ("storage-url: clickhouse://flowscope@flowscope-clickhouse:9000/flowscope\n", False),
])
def test_the_scan_catches_credentials_and_passes_references(sample, caught):
    assert bool(findings(sample)) == caught, findings(sample)


def test_no_file_in_deploy_holds_a_credential():
    problems = []
    # __pycache__: Python's own compiled copies of deploy/grafana/generate.py, not shipped
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            problems.append(f"{path.relative_to(DEPLOY)}: binary file (cannot be checked)")
            continue
        problems += [f"{path.relative_to(DEPLOY)}: {f}" for f in findings(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlays_ship_no_secret_and_take_secrets_from_secret_refs(overlay):
    objects = render(overlay)
    assert not [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"], "the user creates Secrets"
    for config in (o for o in objects if o["kind"] == "ConfigMap"):
        assert not any(findings(f"{k}: {v}") for k, v in config["data"].items()), config["metadata"]["name"]
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                if SECRET_KEY.search(var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), f'{container["name"]}: {var["name"]}'
            assert not any("$(" in arg and SECRET_KEY.search(arg) for arg in container.get("args", [])), \
                f'{container["name"]}: a secret expanded into the arguments is in the process list'


def check_listeners(args) -> None:
    """What each command checks before it opens a store: its HTTP faces' authentication and address,
    and the storage password."""
    from flowscope.commands import relay, ui, up
    from flowscope.storage_options import storage_url
    storage_url(args)
    if args.command == "ui":
        ui.http_settings(args)
    if args.command in ("relay", "up"):
        relay.prepare_http_api(args)
    if args.command == "up":
        up.prepare_ui(args)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_programs_start_with_the_secrets_and_refuse_without_them(overlay, monkeypatch):
    """Each flowscope container's arguments and environment, as rendered: with the Secrets' keys
    present the command's checks pass; without any one of them it refuses, naming what it expected."""
    from common.errors import UserError
    from flowscope.cli import build_parser

    objects = render(overlay)
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if not container["image"].startswith("ghcr.io/flowscope/") or container["args"][0] not in (
                    "relay", "ui", "up"):  # the commands that serve HTTP or open a store
                continue
            env, secret_vars = {}, []
            for var in container.get("env", []):
                source = var.get("valueFrom", {})
                if "secretKeyRef" in source:
                    env[var["name"]] = "s" * 24
                    secret_vars.append(var["name"])
                elif "configMapKeyRef" in source:
                    env[var["name"]] = config_maps[source["configMapKeyRef"]["name"]][source["configMapKeyRef"]["key"]]
                else:
                    env[var["name"]] = var.get("value", "")
            args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""), a) for a in container["args"]]
            parsed = build_parser(args[0]).parse_args(args)
            for name in secret_vars:
                monkeypatch.setenv(name, env[name])
            check_listeners(parsed)
            for name in secret_vars:
                monkeypatch.delenv(name)
                with pytest.raises(UserError, match="expected"):
                    check_listeners(parsed)
                monkeypatch.setenv(name, env[name])
