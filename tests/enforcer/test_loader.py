"""Loading policies: files, directories, multi-document YAML; every invalid policy is one PolicyError with
file, document, field path and reason — never another exception (fuzzed)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcer.policy import PolicyError, load_policies, parse_text
from common.errors import UserError

GOOD = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}]
"""
CILIUM = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
    toPorts: [{ports: [{port: "80"}]}]
"""


def test_files_and_directories_multi_document(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD + "---\n" + CILIUM)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(GOOD.replace("name: backend,", "name: other,"))
    (tmp_path / "notes.txt").write_text("not a policy")
    policies = load_policies([str(tmp_path)])
    assert [(p.kind, p.name, p.document) for p in policies] == [
        ("NetworkPolicy", "backend", 0), ("CiliumNetworkPolicy", "fe", 1), ("NetworkPolicy", "other", 0)]
    assert policies[0].file == str(tmp_path / "a.yaml")


def test_a_list_of_policies_and_defaults():
    text = "apiVersion: v1\nkind: List\nitems:\n- " + GOOD.replace("\n", "\n  ").replace("namespace: shop", "")
    [policy] = parse_text(text)
    assert policy.namespace == "default" and policy.egress is None and policy.ingress is not None


BAD = [
    # (text, path, reason fragment, line)
    (GOOD.replace("port: 8080", "port: 70000"), "spec.ingress[0].ports[0].port", "out of range 1-65535", 8),
    (GOOD.replace("port: 8080", "port: 0"), "spec.ingress[0].ports[0].port", "out of range", 8),
    (GOOD.replace("port: 8080", "port: 80, endPort: 70"), "spec.ingress[0].ports[0].endPort", "below port", 8),
    (GOOD.replace("port: 8080", "port: http, endPort: 90"), "spec.ingress[0].ports[0].endPort", "named port", 8),
    (GOOD.replace("port: 8080", "port: Not_A_Name"), "spec.ingress[0].ports[0].port", "port name", 8),
    (GOOD.replace("port: 8080", "port: 80, protocol: ICMP"), "spec.ingress[0].ports[0].protocol",
     "expected one of TCP, UDP, SCTP", 8),
    (GOOD.replace("  ingress:", "  ingres:"), "spec.ingres", "unknown field", 6),
    (GOOD.replace("{app: frontend}", "{app: frontend}, matchLabel: {}"), "spec.ingress[0].from[0].podSelector.matchLabel",
     "unknown field", 7),
    (GOOD.replace("podSelector: {matchLabels: {app: backend}}", "podSelector: [app]"), "spec.podSelector",
     "expected a mapping", 5),
    (GOOD.replace("podSelector: {matchLabels: {app: backend}}", "podSelctor: {}"), "spec.podSelctor",
     "unknown field", 5),
    (GOOD.replace("{matchLabels: {app: backend}}", "{matchLabels: {app: 'bad value!'}}"),
     "spec.podSelector.matchLabels.app", "not a valid label value", 5),
    (GOOD.replace("{matchLabels: {app: backend}}", "{matchExpressions: [{key: app, operator: In}]}"),
     "spec.podSelector.matchExpressions[0]", "non-empty values", 5),
    (GOOD.replace("{matchLabels: {app: backend}}", "{matchExpressions: [{key: app, operator: Is, values: [a]}]}"),
     "spec.podSelector.matchExpressions[0].operator", "expected one of In, NotIn", 5),
    (GOOD.replace("[{podSelector: {matchLabels: {app: frontend}}}]",
                  "[{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]"), "spec.ingress[0].from[0]",
     "cannot be combined", 7),
    (GOOD.replace("[{podSelector: {matchLabels: {app: frontend}}}]",
                  "[{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]"),
     "spec.ingress[0].from[0].ipBlock.except[0]", "not inside 10.0.0.0/8", 7),
    (GOOD.replace("[{podSelector: {matchLabels: {app: frontend}}}]", "[{ipBlock: {cidr: 10.0.0.300/8}}]"),
     "spec.ingress[0].from[0].ipBlock.cidr", "not a CIDR", 7),
    (GOOD.replace("name: backend,", "name: Backend_1,"), "metadata.name", "not a valid name", 3),
    (GOOD.replace("networking.k8s.io/v1", "networking.k8s.io/v1beta1"), "apiVersion", "expected networking", 1),
    (GOOD.replace("kind: NetworkPolicy", "kind: Pod"), "kind", "expected one of NetworkPolicy", 2),
    (GOOD.replace("  ingress:", "  policyTypes: [Egress]\n  ingress:"), "spec.ingress", "policyTypes", 7),
    ("just a string", "", "expected a policy", 1),
    ("a: b: c", "", "not valid YAML", 1),
    (GOOD + "---\n" + GOOD, "metadata.name", "already defined", 12),
    (CILIUM.replace("matchName: api.example.com", "matchName: 'bad name!'"),
     "spec.egress[0].toFQDNs[0].matchName", "not a valid DNS name", 7),
    (CILIUM.replace('port: "80"', 'port: "99999"'), "spec.egress[0].toPorts[0].ports[0].port", "out of range", 8),
    (CILIUM.replace("toFQDNs: [{matchName: api.example.com}]", "toEntities: [galaxy]"),
     "spec.egress[0].toEntities[0]", "expected one of world, cluster", 7),
    (CILIUM.replace("endpointSelector", "endpointSelecter"), "spec.endpointSelecter", "unknown field", 5),
    (CILIUM.replace('[{ports: [{port: "80"}]}]', '[{ports: [{port: "80"}], rules: {http: [{path: "(["}]}}]'),
     "spec.egress[0].toPorts[0].rules.http[0].path", "regular expression", 8),
    (CILIUM.replace("  egress:", "  egressDeny:").replace('[{ports: [{port: "80"}]}]',
                                                            '[{ports: [{port: "80"}], rules: {http: [{}]}}]'),
     "spec.egressDeny[0].toPorts[0].rules", "cannot carry L7", 8),
]


@pytest.mark.parametrize("text,path,reason,line", BAD)
def test_invalid_policies_name_file_document_field_and_reason(text, path, reason, line):
    with pytest.raises(PolicyError) as err:
        parse_text(text, "policies/x.yaml")
    e = err.value
    assert isinstance(e, UserError)
    assert (e.file, e.path) == ("policies/x.yaml", path)
    assert reason in e.reason
    assert e.line == line
    assert str(e).startswith(f"policies/x.yaml:{line} (document ")
    assert "\n" not in str(e)


def test_second_document_is_named(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD + "---\n" + CILIUM.replace('"80"', '"-1"'))
    with pytest.raises(PolicyError) as err:
        load_policies([str(f)])
    assert err.value.document == 1 and err.value.path == "spec.egress[0].toPorts[0].ports[0].port"


def test_missing_path():
    with pytest.raises(PolicyError, match="no such file"):
        load_policies(["/nonexistent/policies"])


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12),
                     st.sampled_from(["TCP", "UDP", "ANY", "In", "Exists", "10.0.0.0/8", "world", "80", "http"]))
_keys = st.sampled_from(["apiVersion", "kind", "metadata", "spec", "name", "namespace", "podSelector",
                         "endpointSelector", "matchLabels", "matchExpressions", "key", "operator", "values",
                         "ingress", "egress", "ingressDeny", "from", "to", "ports", "port", "endPort", "protocol",
                         "ipBlock", "cidr", "except", "namespaceSelector", "policyTypes", "toPorts", "fromEndpoints",
                         "toEntities", "toFQDNs", "matchName", "matchPattern", "rules", "http", "dns", "path",
                         "toCIDRSet", "items", "app"])
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_keys, inner, max_size=4)), max_leaves=25)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["NetworkPolicy", "CiliumNetworkPolicy", "List"]), spec=_values, meta=_values)
def test_fuzz_structured_documents_only_raise_policy_error(kind, spec, meta):
    import yaml
    api = {"NetworkPolicy": "networking.k8s.io/v1", "CiliumNetworkPolicy": "cilium.io/v2", "List": "v1"}[kind]
    doc = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec, "items": [spec]}
    try:
        parse_text(yaml.safe_dump(doc), "fuzz.yaml")
    except PolicyError as err:
        assert err.file == "fuzz.yaml"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_raw_text_only_raises_policy_error(text):
    try:
        parse_text(text, "fuzz.yaml")
    except PolicyError:
        pass


def test_cli_prints_one_line_with_file_line_and_field(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "---\n" + GOOD.replace("name: backend,", "name: other,").replace("port: 8080", "port: 0"))
    result = subprocess.run([sys.executable, "-m", "flowscope", "policy", "check", str(bad), "--storage",
                             f"chdb://{tmp_path}/db"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"flowscope policy: error: {bad}:17 (document 1): spec.ingress[0].ports[0].port: "
                             "0 is out of range 1-65535\n")


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{new}: &{new} [{', '.join([f'*{old}'] * 9)}]\n" for old, new in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, reason", [
    (BILLION_LAUGHS, "expands to more than 100000 values (YAML aliases repeating an anchor?): refused"),
    ("[" * 50_000 + "]" * 50_000, "nested deeper than 64 levels: refused"),
    ("a: &x [1, *x]\n", "nested deeper than 64 levels (an alias inside its own anchor?): refused"),
])
def test_hostile_yaml_fails_with_a_clear_error(text, reason):
    with pytest.raises(PolicyError) as err:
        parse_text(text, "hostile.yaml")
    assert err.value.reason == reason and str(err.value).startswith("hostile.yaml")


def test_aliases_within_the_budget_still_work():
    text = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\n"
            "spec:\n  podSelector: &web {matchLabels: {app: web}}\n  ingress:\n  - from: [{podSelector: *web}]\n")
    [policy] = parse_text(text)
    assert policy.name == "p"


@pytest.mark.parametrize("kind_and_spec", [
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a, namespace: b}\n"
    "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: PORT}]}]\n",
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: b}\n"
    "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: PORT}]\n",
])
def test_a_port_of_unicode_digits_is_refused_not_a_crash(kind_and_spec):
    """"²".isdigit() is True and int("²") raises ValueError."""
    with pytest.raises(PolicyError, match="'²' is neither a port number"):
        parse_text(kind_and_spec.replace("PORT", '"²"'))
