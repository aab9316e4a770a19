"""Which NXDOMAIN answers are the resolver's search-list expansion, not a failed lookup.

A pod's resolv.conf searches `<ns>.svc.<domain>`, `svc.<domain>` and `<domain>` with ndots:5, so a
lookup of `api.example.com` first asks `api.example.com.shop.svc.cluster.local.` and two more names,
each answered NXDOMAIN by design, before `api.example.com.` answers. The application sees only the
last answer; counting the expansions as errors paints every DNS edge red. As Hubble's and Pixie's
dashboards treat them: a name made of a dotted name plus one of the client's search suffixes is an
expansion. A single label plus a suffix (`nope.shop.svc.cluster.local.`) is what a lookup of a service
name asks first: its NXDOMAIN stays an error."""

from __future__ import annotations

CLUSTER_DOMAIN = "cluster.local"


def search_suffixes(namespace: str, domain: str = CLUSTER_DOMAIN) -> tuple[str, ...]:
    """The search list of a pod in `namespace`, longest first, as absolute names."""
    return tuple(s for s in (f"{namespace}.svc.{domain}." if namespace else "", f"svc.{domain}.", f"{domain}.") if s)


def is_search_expansion(query: str, namespace: str, domain: str = CLUSTER_DOMAIN) -> bool:
    name = query if query.endswith(".") else query + "."
    for suffix in search_suffixes(namespace, domain):
        if name.endswith("." + suffix):
            return "." in name[:-len(suffix) - 1]
    return False
