"""Service map, what changed, top talkers, drops, HTTP RED, DNS, namespaces and nodes over lab-like flows."""

from proto.flow import flow_pb2
from storage import FlowWriter
from tests.storage.flows import BASE_NS, base

MIN = 60 * 10**9
T0 = BASE_NS // MIN * MIN + 60 * MIN  # a minute boundary
FRONT = ("shop", "frontend-7d9f-abc", "frontend")
BACK = ("shop", "backend-5c6d-xyz", "backend")
DNS = ("kube-system", "coredns-1", "coredns")
DB = ("db", "postgres-0", "postgres")


def _http(t, code, latency, src=FRONT, dst=BACK):
    req = base(t, src=src, dst=dst, dport=8080)
    req.l7.type = flow_pb2.REQUEST
    req.l7.http.method, req.l7.http.url = "GET", "http://backend:8080/users"
    resp = base(t + 1000, src=dst, dst=src, sport=8080, dport=40000, reply=True)
    resp.l7.type, resp.l7.latency_ns = flow_pb2.RESPONSE, latency
    resp.l7.http.code, resp.l7.http.method = code, "GET"
    return [req, resp]


def _dns(t, query, rcode):
    req = base(t, src=FRONT, dst=DNS, proto="UDP", sport=33333, dport=53)
    req.l7.type = flow_pb2.REQUEST
    req.l7.dns.query = query
    resp = base(t + 1000, src=DNS, dst=FRONT, proto="UDP", sport=53, dport=33333, reply=True)
    resp.l7.type, resp.l7.latency_ns = flow_pb2.RESPONSE, 500_000
    resp.l7.dns.query, resp.l7.dns.rcode = query, rcode
    return [req, resp]


def lab_flows() -> list[flow_pb2.Flow]:
    flows = []
    for i in range(10):  # 10 HTTP exchanges, one 503, latencies 1..10 ms
        flows += _http(T0 + i * 10**9, 503 if i == 0 else 200, (i + 1) * 1_000_000)
    syn = base(T0 + 20 * 10**9, src=FRONT, dst=BACK, dport=8080)  # plain L4 flow of the same edge
    syn.counters.bytes_forward, syn.counters.bytes_reverse = 1000, 5000
    flows.append(syn)
    flows += _dns(T0 + 30 * 10**9, "api.example.com.", 0)
    flows += _dns(T0 + 31 * 10**9, "nope.example.com.", 3)
    for i in range(3):
        drop = base(T0 + (40 + i) * 10**9, src=BACK, dst=DB, dport=5432, verdict=flow_pb2.DROPPED)
        drop.drop_reason_desc = flow_pb2.POLICY_DENIED
        drop.ClearField("is_reply")
        flows.append(drop)
    world = base(T0 + 50 * 10**9, src=FRONT, dport=443, node="default/node-b")
    world.destination.Clear()
    world.destination.identity = 2
    world.IP.destination = "93.184.216.34"
    world.destination_names.append("api.example.com")
    flows.append(world)
    return flows


def test_service_map_has_exactly_the_lab_edges(store, tmp_path):
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(lab_flows())
    smap = store.service_map(T0, T0 + 2 * MIN)
    edges = {e.key: e for e in smap.edges}
    assert set(edges) == {
        ("shop/frontend", "shop/backend", 8080, "TCP", "FORWARDED"),
        ("shop/frontend", "kube-system/coredns", 53, "UDP", "FORWARDED"),
        ("shop/backend", "db/postgres", 5432, "TCP", "DROPPED"),
        ("shop/frontend", "world:api.example.com", 443, "TCP", "FORWARDED"),
    }
    http = edges[("shop/frontend", "shop/backend", 8080, "TCP", "FORWARDED")]
    assert (http.flows, http.requests, http.errors, http.bytes) == (21, 10, 1, 6000)
    assert http.error_rate == 0.1 and http.l7 == ("http",)
    assert 4_000_000 <= http.p50_ns <= 7_000_000 and 9_000_000 <= http.p99_ns <= 10_000_000
    dns = edges[("shop/frontend", "kube-system/coredns", 53, "UDP", "FORWARDED")]
    assert (dns.flows, dns.requests, dns.errors, dns.l7) == (4, 2, 1, ("dns",))
    world = edges[("shop/frontend", "world:api.example.com", 443, "TCP", "FORWARDED")]
    assert world.target_ips == ("93.184.216.34",)
    assert edges[("shop/backend", "db/postgres", 5432, "TCP", "DROPPED")].flows == 3
    nodes = {n.id: n for n in smap.nodes}
    assert set(nodes) == {"shop/frontend", "shop/backend", "kube-system/coredns", "db/postgres",
                          "world:api.example.com"}
    assert nodes["world:api.example.com"].kind == "world" and nodes["shop/frontend"].flows_out == 26
    only_db = store.service_map(T0, T0 + 2 * MIN, namespaces=["db"])
    assert [e.target for e in only_db.edges] == ["db/postgres"]
    day = store.service_map(T0 - 12 * 60 * MIN, T0 + 12 * 60 * MIN)  # long windows read hourly edges
    assert [(e.key, e.flows, e.requests, e.errors, e.bytes) for e in day.edges] == \
        [(e.key, e.flows, e.requests, e.errors, e.bytes) for e in smap.edges]


def test_search_list_nxdomains_are_not_dns_errors_on_the_map(store, tmp_path):
    """frontend (in shop) resolves api.example.com as a pod's resolver does with ndots:5: three
    NXDOMAIN expansions, then the answer; and a missing service `nope`, whose first NXDOMAIN is a real
    error. The DNS edge counts 1 error in 5 answers, not 4: the DNS panel still lists every NXDOMAIN."""
    flows = []
    for i, (query, rcode) in enumerate([
            ("api.example.com.shop.svc.cluster.local.", 3), ("api.example.com.svc.cluster.local.", 3),
            ("api.example.com.cluster.local.", 3), ("api.example.com.", 0), ("nope.shop.svc.cluster.local.", 3)]):
        flows += _dns(T0 + i * 10**9, query, rcode)
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows)
    dns = store.service_map(T0, T0 + 2 * MIN).edges[0]
    assert (dns.source, dns.requests, dns.errors, dns.error_rate) == ("shop/frontend", 5, 1, 0.2)
    assert {q.query: q.nxdomain for q in store.dns_summary(T0, T0 + 2 * MIN).top_queries}[
        "api.example.com.shop.svc.cluster.local."] == 1


def test_what_changed_between_windows(store, tmp_path):
    flows = lab_flows()
    earlier = base(T0 - 5 * MIN, src=FRONT, dst=("shop", "legacy-1", "legacy"), dport=80)
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows + [earlier])
    changes = store.service_map_changes(T0, T0 + 10 * MIN - 1)
    assert [e.target for e in changes.removed] == ["shop/legacy"]
    assert len(changes.added) == 4 and len(changes.previous.edges) == 1


def test_talkers_drops_red_dns_inventory(store, tmp_path):
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(lab_flows())
    window = (T0, T0 + 2 * MIN)
    top = store.top_talkers(*window, limit=1, by="flows")
    assert (top[0].source, top[0].target, top[0].flows) == ("shop/frontend", "shop/backend", 21)
    assert store.top_talkers(*window, by="bytes")[0].bytes == 6000
    (drops,) = store.drops_by_reason(*window)
    assert (drops.reason, drops.flows) == ("POLICY_DENIED", 3)
    red = store.http_red(*window, step_s=60)
    assert [(p.namespace, p.workload, p.requests, p.errors) for p in red] == [("shop", "backend", 10, 1)]
    assert red[0].rate == 10 / 60 and red[0].error_ratio == 0.1
    dns = store.dns_summary(*window)
    assert [(p.workload, p.queries, p.responses, p.nxdomain) for p in dns.series] == [("frontend", 2, 2, 1)]
    assert {(q.query, q.nxdomain) for q in dns.top_queries} == {("api.example.com.", 0),
                                                                ("nope.example.com.", 1)}
    assert store.namespaces(since=T0) == ["db", "kube-system", "shop"]
    assert [(n.name, n.flows) for n in store.nodes()] == [("default/node-a", 28), ("default/node-b", 1)]
    edge = next(e for e in store.service_map(*window).edges if e.target == "shop/backend")
    page = store.flows_page(edge=edge, limit=100)
    assert page.total == 21  # requests, responses (replies) and the L4 flow of that edge
    assert store.flows_page(node="db/postgres", limit=100).total == 3
