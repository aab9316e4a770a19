"""flowscope.client against a real relay with real storage (chdb): the DataFrame of a window equals
`flowscope observe -o json` for the same window field by field, from the relay and from storage alike;
a long window streams in bounded batches, in time order; bad arguments get one-line errors."""

import datetime
import json

import pandas as pd
import pyarrow as pa
import pytest

from common.errors import UserError
from flowscope.client import FLOW_SCHEMA, Client, ClientError
from proto.flow import flow_pb2
from relay import Peer
from tests.fixtures.cli import flowscope
from tests.relay.nodes import make_flow, wait_for

NS = 1_000_000_000
T0 = int(datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc).timestamp()) * NS


def rich_flows(node: str, offset: int) -> list[flow_pb2.Flow]:
    """TCP with flags and a reply, HTTP, DNS with answers, ICMP and a world endpoint, a policy drop."""
    flows = []
    for i in range(12):
        t = T0 + (offset + 2 * i) * 7 * NS
        kind = i % 4
        if kind == 0:
            f = make_flow(t, f"frontend-{i}", "backend-0", port=8080)
            f.l4.TCP.flags.SYN = f.l4.TCP.flags.ACK = True
            f.is_reply.value = bool(i % 8)
            f.counters.bytes_forward, f.counters.packets_forward = 1500 + i, 3
        elif kind == 1:
            f = make_flow(t, "frontend-0", "backend-0", port=8080)
            f.Type, f.l7.type, f.l7.latency_ns = flow_pb2.L7, flow_pb2.RESPONSE, 1_250_000 + i
            f.l7.http.code, f.l7.http.method, f.l7.http.url = 503, "GET", f"http://backend/api/{i}"
            f.l7.http.protocol = "HTTP/1.1"
            f.source.workloads.add(name="frontend", kind="Deployment")
        elif kind == 2:
            f = make_flow(t, "frontend-0", "coredns-0", namespace="kube-system", port=53, protocol="udp")
            f.Type, f.l7.type = flow_pb2.L7, flow_pb2.RESPONSE
            f.l7.dns.query, f.l7.dns.rcode = "backend.shop.svc.cluster.local.", 3 * (i % 8 == 2)
            f.l7.dns.ips.extend(["10.96.0.10", "10.96.0.11"])
            f.l7.dns.qtypes.append("A")
            f.destination_names.append("kube-dns")
        else:
            f = make_flow(t, "frontend-0", "x", verdict=flow_pb2.DROPPED)
            f.ClearField("l4")
            f.l4.ICMPv4.type = 8
            f.destination.Clear()
            f.destination.identity = 2
            f.destination.labels.append("reserved:world")
            f.IP.destination = "93.184.216.34"
            f.drop_reason_desc = flow_pb2.POLICY_DENIED
            f.destination_names.append("example.com")
        f.node_name = node
        f.trace_observation_point = flow_pb2.TO_ENDPOINT
        flows.append(f)
    return flows


def json_row(line: dict) -> dict:
    """One `observe -o json` line, flattened by hand to the SDK's columns (absent = null/0/[])."""
    f = line["flow"]
    l4 = f.get("l4", {})
    proto = next(iter(l4), None)
    ports = l4.get(proto, {}) if proto in ("TCP", "UDP", "SCTP") else {}
    icmp = l4.get(proto, {}) if proto and proto.startswith("ICMP") else None
    l7 = f.get("l7", {})
    record = next((k for k in ("dns", "http", "kafka") if k in l7), None)
    row = {
        "time": pd.Timestamp(f["time"]), "uuid": f["uuid"], "node_name": f.get("node_name"),
        "verdict": f.get("verdict"), "drop_reason": f.get("drop_reason_desc"),
        "traffic_direction": f.get("traffic_direction"), "is_reply": f.get("is_reply"),
        "type": f.get("Type"), "event_type": f.get("event_type", {}).get("type", 0),
        "observation_point": f.get("trace_observation_point"), "ip_version": f.get("IP", {}).get("ipVersion"),
        "source_ip": f.get("IP", {}).get("source"), "destination_ip": f.get("IP", {}).get("destination"),
        "protocol": proto, "source_port": ports.get("source_port"), "destination_port": ports.get("destination_port"),
        "icmp_type": icmp.get("type", 0) if icmp is not None else None,
        "icmp_code": icmp.get("code", 0) if icmp is not None else None,
        "tcp_flags": sorted(ports.get("flags", {})),
        "l7": record, "l7_type": l7.get("type"),
        "latency": pd.Timedelta(int(l7.get("latency_ns", 0)), "ns") if record else None,
        "http_code": l7.get("http", {}).get("code"), "http_method": l7.get("http", {}).get("method"),
        "http_url": l7.get("http", {}).get("url"), "http_protocol": l7.get("http", {}).get("protocol"),
        "dns_query": l7.get("dns", {}).get("query"),
        "dns_rcode": l7.get("dns", {}).get("rcode", 0) if record == "dns" else None,
        "dns_ips": l7.get("dns", {}).get("ips", []), "dns_qtypes": l7.get("dns", {}).get("qtypes", []),
    }
    for side in ("source", "destination"):
        ep = f.get(side, {})
        row.update({f"{side}_cluster": ep.get("cluster_name"), f"{side}_namespace": ep.get("namespace"),
                    f"{side}_pod_name": ep.get("pod_name"), f"{side}_identity": ep.get("identity", 0),
                    f"{side}_labels": ep.get("labels", []), f"{side}_names": f.get(f"{side}_names", []),
                    f"{side}_service": f.get(f"{side}_service", {}).get("name")})
    return row


def normalized(value):
    if isinstance(value, float) and pd.isna(value) or value is pd.NaT:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    return sorted(value) if isinstance(value, list) and value and value[0] in {
        "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"} else value


@pytest.fixture
def stored_relay(node_factory, relay_factory, relay_store):
    a, b = node_factory("node-a"), node_factory("node-b")
    a.publish(*rich_flows("node-a", 0))
    b.publish(*rich_flows("node-b", 1))
    writer = relay_store.writer()
    running = relay_factory(store=relay_store.store, writer=writer)
    for node in (a, b):
        running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.stored_flows == 24, timeout=60, what="24 flows stored")
    writer.flush()
    yield running, relay_store.store
    writer.close()


def test_dataframe_equals_observe_json_field_by_field(stored_relay):
    running, store = stored_relay
    since, until = "2026-11-30T12:00:00Z", "2026-11-30T12:02:30Z"
    done = flowscope("observe", "--server", running.address, "--since", since, "--until", until, "-o", "json")
    assert done.returncode == 0, done.stderr
    expected = [json_row(json.loads(line)) for line in done.stdout.splitlines()]
    assert len(expected) == 22  # two flows fall after 12:02:30

    for client in (Client(relay=running.address), Client(storage=store)):
        df = client.flows(since=since, until=until, pandas=True)
        assert list(df.columns) == FLOW_SCHEMA.names
        assert str(df["time"].dtype) == "datetime64[ns, UTC]"
        assert len(df) == len(expected)
        for got, want in zip(df.to_dict("records"), expected):
            for column, value in want.items():
                assert normalized(got[column]) == normalized(value), (column, got["uuid"])
        # what the JSON cannot say directly: derived workload and kind, counters as numbers
        first = df.iloc[0]
        assert (first.source_workload, first.source_kind, first.bytes_forward) == ("frontend-0", "pod", 1500)
        world = df[df.protocol == "ICMPv4"].iloc[0]
        assert (world.destination_kind, world.destination_workload, world.icmp_type) == ("world", "example.com", 8)


def test_filters_as_keywords_and_typed_columns(stored_relay):
    running, store = stored_relay
    for client in (Client(relay=running.address), Client(storage=store)):
        table = client.flows(since=T0, until=T0 + 3600 * NS, http_status_code="5+")
        assert table.schema == FLOW_SCHEMA
        assert table.num_rows == 6 and set(table.column("http_code").to_pylist()) == {503}
        assert table.schema.field("source_labels").type == pa.list_(pa.string())
        drops = client.flows(since=T0, verdict="DROPPED", destination_label="reserved:world")
        assert drops.num_rows == 6 and set(drops.column("drop_reason").to_pylist()) == {"POLICY_DENIED"}


def test_long_windows_stream_in_bounded_batches(relay_store):
    writer = relay_store.writer()
    flows = [make_flow(T0 + i * 10_000_000, f"frontend-{i % 50}", "backend-0") for i in range(30_000)]
    writer.write(flows)  # 30,000 flows over 5 minutes
    writer.close()
    client = Client(storage=relay_store.store)
    sizes, last, uuids = [], 0, []
    for batch in client.flow_batches(since=T0, until=T0 + 3600 * NS, batch_rows=4096):
        sizes.append(batch.num_rows)
        times = batch.column("time").cast(pa.int64()).to_pylist()
        assert times == sorted(times) and times[0] >= last
        last = times[-1]
        uuids += batch.column("uuid").to_pylist()
    assert max(sizes) <= 4096 and len(sizes) >= 30_000 // 4096
    assert sorted(uuids) == sorted(f.uuid for f in flows)


@pytest.mark.parametrize("kwargs, message", [
    ({"since": "yesterday"}, "since 'yesterday': expected a duration ago"),
    ({"since": 1.5}, "since=1.5: expected"),
    ({"source_pood": "x"}, "flow filter {'source_pood': 'x'}"),
    ({"verdict": "MAYBE"}, "MAYBE"),
    ({"batch_rows": 0}, "batch_rows=0"),
    ({"since": "1m", "until": "2m"}, "is after until"),
])
def test_bad_arguments(relay_store, kwargs, message):
    client = Client(storage=relay_store.store)
    with pytest.raises(UserError) as err:
        client.flows(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_aggregates_need_storage_and_come_as_tables(stored_relay):
    running, store = stored_relay
    with pytest.raises(ClientError, match="aggregates .* read storage"):
        Client(relay=running.address).service_map("1h")
    client = Client(storage=store)
    window = (T0, T0 + 3600 * NS)
    edges = client.service_map(window, pandas=True)
    assert "shop/backend-0" in set(edges.target) and "world:example.com" in set(edges.target)
    red = client.http_red(None, window, pandas=True)
    assert red.requests.sum() == 6 and red.errors.sum() == 6
    one = red.iloc[0]
    assert client.http_red(f"{one.namespace}/{one.workload}", window).num_rows == (red.workload == one.workload).sum()
    dns = client.dns(window)
    assert sum(dns.column("responses").to_pylist()) == 6
