"""Search-list expansions of a pod's resolver (ndots:5) against real lookups."""

import pytest

from common.dns_search import is_search_expansion, search_suffixes


@pytest.mark.parametrize("query, namespace, expansion", [
    ("api.example.com.shop.svc.cluster.local.", "shop", True),
    ("api.example.com.svc.cluster.local.", "shop", True),
    ("api.example.com.cluster.local.", "shop", True),
    ("database.data.svc.cluster.local.shop.svc.cluster.local.", "shop", True),
    ("database.data.svc.cluster.local.cluster.local", "shop", True),  # without the final dot
    ("nope.shop.svc.cluster.local.", "shop", False),  # what `nope` asks first: a real miss
    ("backend.shop.svc.cluster.local.", "shop", False),
    ("api.example.com.", "shop", False),
    ("api.example.com.data.svc.cluster.local.", "shop", True),  # data.svc.cluster.local. ends with svc...
    ("cluster.local.", "shop", False),
    ("", "shop", False),
])
def test_expansions(query, namespace, expansion):
    assert is_search_expansion(query, namespace) is expansion


def test_suffixes_longest_first():
    assert search_suffixes("shop") == ("shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local.")
    assert search_suffixes("") == ("svc.cluster.local.", "cluster.local.")
