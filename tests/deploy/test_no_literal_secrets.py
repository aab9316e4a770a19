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
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
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
