"""Fuzz the policy loader (enforcer/policy): any text is policies or one PolicyError naming file, document,
field and reason — hostile YAML (alias bombs, deep nesting) included."""

import atheris

with atheris.instrument_imports(include=["enforcer.policy", "common.patterns"]):
    from enforcer.policy import PolicyError, parse_text

from tests.fuzz.engine import run

SEEDS = [b"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [frontend]}]}
    - namespaceSelector: {matchLabels: {team: shop}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: 8080}, {port: 7000, endPort: 7100, protocol: TCP}]
  egress:
  - to: [{podSelector: {}}]
""", b"""apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop, labels: {team: shop}}
spec:
  endpointSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}
  ingress:
  - fromEntities: [cluster]
    toPorts: [{ports: [{port: "8000", endPort: 8100}], rules: {http: [{method: GET, path: "/v1/.*"}]}}]
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}, {matchName: api.test}]
  egressDeny:
  - toCIDRSet: [{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}]
---
apiVersion: v1
kind: List
items: []
"""]


def one_input(data: bytes) -> None:
    try:
        parse_text(data.decode("utf-8", "replace"), "fuzz.yaml")
    except PolicyError:
        return


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
