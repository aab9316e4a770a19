"""Relay benchmark, run by hand:  .venv/bin/python bench/relay.py [--nodes 2] [--flows 200000]

1. ingest: N real collector Observer servers (one process each, rings pre-filled with M flows) ->
   relay -> storage; flows/s until every flow is stored, checked exactly (count and distinct uuids).
   Side by side: batched node link (flowscope.FlowBatches) vs one flow per message (observer.GetFlows),
   into chdb vs into memory only, and "replayed": nodes that send pre-serialized batches, so the
   collectors' own CPU is taken out and the relay's capacity shows (all share this machine's cores).
2. follow: flows/s to one GetFlows follow client (another process) while collectors publish live.
3. memory: relay RSS every 10 s while collectors publish at a steady rate into chdb.
4. storage (--storage-vs TREE[,TREE]): relay from N collectors into chdb, this tree vs each TREE (a checkout
   of the code before a change), and the embedded ingest alone (FlowWriter.write of the same flows as
   messages, no relay, no collectors) in each tree; each case a fresh process importing its tree, cases
   interleaved, every flow checked stored once; flows/s and CPU µs per flow of the relay's process
   (chdb and every thread of it; the collectors' processes not counted).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if "--tree" in sys.argv:  # part 4's cases import the tree under test (the collectors stay this tree's)
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

import grpc  # noqa: E402

from proto.flow import flow_pb2  # noqa: E402
from proto.observer import observer_pb2_grpc  # noqa: E402

PY = sys.executable
HERE = os.path.abspath(__file__)


# ----- child: one collector ------------------------------------------------------------------------

def template_flow(node: str) -> flow_pb2.Flow:
    flow = flow_pb2.Flow(verdict=flow_pb2.FORWARDED, Type=flow_pb2.L3_L4, node_name=node,
                         traffic_direction=flow_pb2.EGRESS, Summary="TCP Flags: SYN")
    flow.IP.source, flow.IP.destination, flow.IP.ipVersion = "10.244.0.11", "10.244.1.12", flow_pb2.IPv4
    flow.l4.TCP.source_port, flow.l4.TCP.destination_port = 43512, 8080
    flow.l4.TCP.flags.SYN = True
    ends = ((flow.source, "frontend-7d9f-abcde", "frontend"), (flow.destination, "backend-5c4b-xyz12", "backend"))
    for ep, pod, app in ends:
        ep.namespace, ep.pod_name, ep.identity = "shop", pod, 1234
        ep.labels.extend([f"k8s:app={app}", "k8s:io.kubernetes.pod.namespace=shop"])
        ep.workloads.add(name=app, kind="Deployment")
    flow.event_type.type = 4
    return flow


def replay_handler(node: str, flows: int) -> grpc.GenericRpcHandler:
    """A node link that sends pre-serialized FlowBatches: what a collector costs is taken out, so the
    relay's own capacity shows."""
    import uuid

    from proto.flowscope import flowscope_pb2
    template = template_flow(node)
    base = time.time_ns() - 3_600_000_000_000
    batches = []
    for start in range(0, flows, 1000):
        batch = flowscope_pb2.FlowBatch()
        for i in range(start, min(flows, start + 1000)):
            response = batch.responses.add(node_name=node)
            response.flow.CopyFrom(template)
            response.flow.uuid = str(uuid.uuid4())
            response.flow.time.FromNanoseconds(base + i * 1000)
            response.time.CopyFrom(response.flow.time)
        batches.append(batch.SerializeToString())

    def stream(request: bytes, context):
        yield from batches
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()

    method = grpc.unary_stream_rpc_method_handler(stream, request_deserializer=None, response_serializer=None)
    return grpc.method_handlers_generic_handler("flowscope.FlowBatches", {"GetFlowBatches": method})


def child(args) -> None:
    from concurrent import futures

    from collector.observer import FlowBatchesServicer, Observer, ObserverServicer, add_health
    from proto.flowscope import flowscope_pb2_grpc

    # A pre-filled ring holds every flow; a live publisher needs only the usual ring.
    observer = Observer(args.child, ring_capacity=max(args.flows if args.prefill else 0, 65536))
    server = grpc.server(futures.ThreadPoolExecutor(8))
    observer_pb2_grpc.add_ObserverServicer_to_server(ObserverServicer(observer), server)
    if args.link == "batch":
        flowscope_pb2_grpc.add_FlowBatchesServicer_to_server(FlowBatchesServicer(observer), server)
    elif args.link == "replay":
        server.add_generic_rpc_handlers((replay_handler(args.child, args.flows),))
    add_health(server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    template = template_flow(args.child)
    base = time.time_ns() - 3_600_000_000_000

    def publish(count: int, rate: float, start_ns: int) -> None:
        began = time.monotonic()
        for i in range(count):
            flow = flow_pb2.Flow()
            flow.CopyFrom(template)
            flow.time.FromNanoseconds(start_ns + i * 1000 if rate == 0 else time.time_ns())
            observer.publish(flow)
            if rate and i % 100 == 99:
                ahead = (i + 1) / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    if args.prefill and args.link != "replay":
        publish(args.flows, 0, base)
    print(port, flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            publish(args.flows, args.rate, time.time_ns())
            print("done", flush=True)
    server.stop(0)


class Collectors:
    """N collector processes; .peers for the relay."""

    def __init__(self, n: int, flows: int, link: str = "batch", prefill: bool = True, rate: float = 0) -> None:
        self.procs = []
        for i in range(n):
            cmd = [PY, HERE, "--child", f"node-{i}", "--flows", str(flows), "--link", link, "--rate", str(rate)]
            if prefill:
                cmd.append("--prefill")
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        self.ports = [int(p.stdout.readline()) for p in self.procs]

    @property
    def peers(self):
        from relay import Peer
        return [Peer(f"node-{i}", f"localhost:{port}") for i, port in enumerate(self.ports)]

    def go(self) -> None:
        for p in self.procs:
            p.stdin.write("go\n")
            p.stdin.flush()

    def close(self) -> None:
        for p in self.procs:
            p.stdin.close()
            p.wait(timeout=30)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


CHDB_DIR = tempfile.mkdtemp(prefix="flowscope-bench-relay-")  # one chdb directory per process


def open_bench_store(database: str, **writer_options):
    """(store, writer) on a fresh database of this process's chdb directory."""
    import storage
    store = storage.open_store(f"chdb://{CHDB_DIR}/db?database={database}_{os.getpid()}_{time.monotonic_ns()}")
    store.migrate()
    return store, storage.FlowWriter(store, **writer_options)


# ----- 1. ingest -------------------------------------------------------------------------------------

def stored_exactly(store) -> tuple[int, int]:
    """(rows, distinct uuids) stored."""
    return store.count(), store.backend.rows(f"SELECT uniqExact(uuid) FROM {store.layout.table('flows')}")[0][0]


def ingest(nodes: int, flows: int, link: str, with_storage: bool) -> dict:
    from relay import Relay
    total = nodes * flows
    collectors = Collectors(nodes, flows, link)
    store, writer = open_bench_store(f"ingest_{link}") if with_storage else (None, None)
    relay = Relay(store, writer).start()
    began = time.monotonic()
    for peer in collectors.peers:
        relay.add_peer(peer)
    counted = (lambda: relay.stored_flows) if with_storage else (lambda: relay.hub.seen_flows)
    deadline = began + 600
    while counted() < total and time.monotonic() < deadline:  # a capped span, not a wait: a shortfall is reported
        time.sleep(0.01)
    relay.stop()  # flushes the writer
    elapsed = time.monotonic() - began
    result = {"delivered": counted(), "elapsed": elapsed, "rate": counted() / elapsed, "rss": rss_mib()}
    if with_storage:
        stored, distinct = stored_exactly(store)
        result.update(stored=stored, distinct=distinct)
        writer.close()
        store.close()
    collectors.close()
    return result


# ----- 2. follow client ------------------------------------------------------------------------------

FOLLOW_CLIENT = """
import sys, time, grpc
sys.path.insert(0, {root!r})
from proto.observer import observer_pb2
# Raw bytes, not parsed: the client must not be the bottleneck (hubble's Go client is faster than Python).
# A GetFlowsResponse starts with its oneof field: 0x0a flow, 0x12 node_status, 0x1a lost_events.
call = grpc.insecure_channel({address!r}).unary_stream(
    "/observer.Observer/GetFlows", request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
    response_deserializer=None)
n = lost = 0; first = last = None
print("ready", flush=True)
for raw in call(observer_pb2.GetFlowsRequest(follow=True), timeout={timeout}):
    if raw[0] == 0x0a:
        n += 1; last = time.monotonic(); first = first or last
    elif raw[0] == 0x1a:
        lost += observer_pb2.GetFlowsResponse.FromString(raw).lost_events.num_events_lost
    if n + lost >= {total}: break
print(n, lost, (last - first) if first else 0, flush=True)
"""


# The same count from an HTTP/2 client that reads the stream in bulk (h2 over a plain socket), as hubble's
# Go client does: what the server can send, without a Python grpcio client's cost per message.
FOLLOW_CLIENT_H2 = """
import socket, sys, time
import h2.config, h2.connection, h2.events, h2.settings
sys.path.insert(0, {root!r})
from proto.observer import observer_pb2
host, port = {address!r}.rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
conn.update_settings({{h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24}})
conn.increment_flow_control_window(1 << 30)
stream = conn.get_next_available_stream_id()
conn.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":path", "/observer.Observer/GetFlows"),
                           (":authority", {address!r}), ("content-type", "application/grpc"), ("te", "trailers")])
body = observer_pb2.GetFlowsRequest(follow=True).SerializeToString()
conn.send_data(stream, b"\\x00" + len(body).to_bytes(4, "big") + body, end_stream=True)
sock.sendall(conn.data_to_send())
buf = bytearray(); n = lost = 0; first = last = None; ended = False
print("ready", flush=True)
while n + lost < {total} and not ended:
    data = sock.recv(1 << 20)
    if not data:
        break
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            buf += event.data
            pos = 0
            while len(buf) - pos >= 5:
                length = int.from_bytes(buf[pos + 1:pos + 5], "big")
                if len(buf) - pos - 5 < length:
                    break
                kind = buf[pos + 5] if length else 0
                if kind == 0x0a:
                    n += 1
                elif kind == 0x1a:
                    lost += observer_pb2.GetFlowsResponse.FromString(bytes(buf[pos + 5:pos + 5 + length])).lost_events.num_events_lost
                pos += 5 + length
            del buf[:pos]
            last = time.monotonic(); first = first or last
        elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
            ended = True
    sock.sendall(conn.data_to_send())
print(n, lost, (last - first) if first else 0, flush=True)
"""


def follow(nodes: int, flows: int, rate: float, via_relay: bool = True,
           client: str = "grpcio") -> dict:
    """One follow client on the relay (grpc.aio), or for comparison on one node's Observer API (grpcio's
    sync server) carrying the same total flows and rate."""
    from relay import Relay, create_server
    if via_relay:
        collectors = Collectors(nodes, flows, prefill=False, rate=rate)
        relay = Relay().start()
        server, port = create_server(relay, "localhost:0")
        for peer in collectors.peers:
            relay.add_peer(peer)
        while relay.status().num_connected_nodes.value < nodes:
            time.sleep(0.05)
    else:
        collectors = Collectors(1, nodes * flows, prefill=False, rate=nodes * rate)
        port = collectors.ports[0]
    total = nodes * flows
    code = (FOLLOW_CLIENT if client == "grpcio" else FOLLOW_CLIENT_H2).format(
        root=os.path.dirname(os.path.dirname(HERE)), address=f"localhost:{port}", timeout=300, total=total)
    client = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    client.stdout.readline()
    time.sleep(0.5)
    collectors.go()
    n, lost, span = client.stdout.readline().split()
    client.wait()
    if via_relay:
        server.stop(0).wait()
        relay.stop()
    collectors.close()
    n, lost, span = int(n), int(lost), float(span)
    return {"received": n, "lost": lost, "rate": n / span if span else 0.0, "expected": total,
            "offered": nodes * rate}


# ----- 3. memory -------------------------------------------------------------------------------------

def memory(nodes: int, rate: float, seconds: int, with_storage: bool) -> list[tuple[int, float, int, int, int]]:
    """(seconds, RSS MiB, Python heap blocks, flows delivered, writer pending rows) every 10 s."""
    from relay import Relay
    flows = int(rate * seconds)
    collectors = Collectors(nodes, flows, prefill=False, rate=rate)
    store, writer = open_bench_store("memory") if with_storage else (None, None)
    relay = Relay(store, writer).start()
    for peer in collectors.peers:
        relay.add_peer(peer)
    collectors.go()
    samples = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        time.sleep(10)
        pending = writer.stats().pending if writer is not None else 0
        samples.append((int(time.monotonic() - began), rss_mib(), sys.getallocatedblocks(), relay.hub.seen_flows,
                        pending))
        print("  t={:4d}s rss={:7.1f} MiB python blocks={:9d} delivered={:9d} writer pending={}".format(
            *samples[-1]), flush=True)
    relay.stop()
    if writer is not None:
        writer.close()
        store.close()
    collectors.close()
    return samples


# ----- 4. storage, this tree vs another ---------------------------------------------------------------

def storage_case(case: str, nodes: int, flows: int, flush_interval: float) -> dict:
    """In a process importing the tree under test: `relay` (N collectors -> relay -> chdb) or `alone`
    (FlowWriter.write of N x M template flows as messages, 1,000 per call as the relay's batches)."""
    import uuid as uuid_module

    total = nodes * flows
    store, writer = open_bench_store(f"storage_{case}", flush_interval=flush_interval)
    if case == "relay":
        from relay import Relay
        collectors = Collectors(nodes, flows, "batch")
        relay = Relay(store, writer).start()
        cpu, began = time.process_time(), time.monotonic()
        for peer in collectors.peers:
            relay.add_peer(peer)
        deadline = began + 900
        while relay.stored_flows < total and time.monotonic() < deadline:  # a capped span, not a wait: "stored" tells
            time.sleep(0.01)
        relay.stop()  # flushes the writer
    else:
        base = time.time_ns() - 3_600_000_000_000
        messages = []
        for node in range(nodes):
            template = template_flow(f"node-{node}")
            for i in range(flows):
                flow = flow_pb2.Flow()
                flow.CopyFrom(template)
                flow.uuid = str(uuid_module.uuid4())
                flow.time.FromNanoseconds(base + i * 1000 + node)
                messages.append(flow)
        cpu, began = time.process_time(), time.monotonic()
        for i in range(0, total, 1000):
            writer.write(messages[i:i + 1000])
        writer.flush()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    stored, distinct = stored_exactly(store)
    inserts = writer.stats().batches_written
    writer.close()
    store.close()
    if case == "relay":
        collectors.close()
    return {"rate": total / elapsed, "cpu_us": 1e6 * cpu / total, "stored": stored, "distinct": distinct,
            "total": total, "inserts": inserts}


def storage_vs(before: str, nodes: int, flows: int, rounds: int, flush_interval: float) -> None:
    """Part 4: this tree against each tree of `before` (comma-separated checkouts, each named by its
    directory), every case of every tree once per round, the order turned around every other round."""
    import json
    trees = [("this tree", os.path.dirname(os.path.dirname(HERE)))]
    trees += [(os.path.basename(t.rstrip("/")), os.path.abspath(t)) for t in before.split(",")]
    results: dict[tuple[str, str], list[dict]] = {}
    print(f"4. storage: {nodes} collectors x {flows} flows, writer batches cut at {flush_interval} s; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"{'case':<48}{'round':>6}{'stored':>10}{'distinct':>10}{'flows/s':>10}{'CPU us/flow':>13}{'inserts':>9}")
    for round_ in range(1, rounds + 1):
        for case in ("relay", "alone"):
            for label, tree in trees if round_ % 2 else trees[::-1]:
                out = subprocess.run([PY, HERE, "--storage-case", case, "--tree", tree, "--nodes", str(nodes),
                                      "--flows", str(flows), "--flush-interval", str(flush_interval)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["stored"] == r["distinct"] == r["total"], f"{label} {case}: {r}"
                results.setdefault((case, label), []).append(r)
                name = f"{'relay -> chdb' if case == 'relay' else 'embedded ingest alone'}, {label}"
                print(f"{name:<48}{round_:>6}{r['stored']:>10}{r['distinct']:>10}{r['rate']:>10.0f}"
                      f"{r['cpu_us']:>13.1f}{r['inserts']:>9}", flush=True)
    mean = {k: (sum(r["rate"] for r in v) / len(v), sum(r["cpu_us"] for r in v) / len(v)) for k, v in results.items()}
    for label, _ in trees:
        print(f"{label}: relay / ingest alone = {mean[('relay', label)][0] / mean[('alone', label)][0]:.2f} "
              f"(flows/s, means of {rounds}); CPU us/flow relay {mean[('relay', label)][1]:.1f}, "
              f"alone {mean[('alone', label)][1]:.1f}")
    ours = mean[("relay", trees[0][0])]
    for label, _ in trees[1:]:
        theirs = mean[("relay", label)]
        print(f"relay, this tree / {label}: {ours[0] / theirs[0]:.2f}x flows/s, {theirs[1] / ours[1]:.2f}x less CPU "
              "per flow")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--link", default="batch", help=argparse.SUPPRESS)
    parser.add_argument("--prefill", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--flows", type=int, default=200_000, help="flows per collector")
    parser.add_argument("--memory-seconds", type=int, default=600)
    parser.add_argument("--memory-rate", type=float, default=10_000, help="flows/s per collector")
    parser.add_argument("--memory-into", default="memory,chdb", help="memory and/or chdb")
    parser.add_argument("--follow-rate", type=float, default=8_000, help="flows/s per collector")
    parser.add_argument("--skip", default="", help="comma list of ingest,follow,memory to skip")
    parser.add_argument("--storage-vs", metavar="TREE[,TREE]", help="only part 4: this tree against the code in "
                        "each TREE (a checkout, e.g. from git archive)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of part 4")
    parser.add_argument("--flush-interval", type=float, default=1.0,
                        help="part 4: the writer's flush_interval (its batches cut by age), in seconds")
    parser.add_argument("--storage-case", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.storage_case:
        import json
        print(json.dumps(storage_case(args.storage_case, args.nodes, args.flows, args.flush_interval)), flush=True)
        return
    if args.storage_vs:
        storage_vs(args.storage_vs, args.nodes, args.flows, args.rounds, args.flush_interval)
        return
    skip = set(args.skip.split(","))
    if "ingest" not in skip:
        print(f"1. ingest: {args.nodes} collectors x {args.flows} flows -> relay")
        print(f"{'node link':<22}{'into':<8}{'delivered':>10}{'stored':>10}{'distinct':>10}{'seconds':>9}"
              f"{'flows/s':>10}")
        cases = [("FlowBatches", "batch", True), ("FlowBatches", "batch", False),
                 ("FlowBatches, replayed", "replay", False), ("GetFlows 1/msg", "flows", False)]
        for label, link, with_storage in cases:
            flows = min(args.flows, 50_000) if link == "flows" else args.flows
            r = ingest(args.nodes, flows, link, with_storage)
            print(f"{label:<22}{'chdb' if with_storage else 'memory':<8}{r['delivered']:>10}"
                  f"{r.get('stored', '-'):>10}{r.get('distinct', '-'):>10}{r['elapsed']:>9.2f}{r['rate']:>10.0f}",
                  flush=True)
    if "follow" not in skip:
        print("\n2. one GetFlows follow client (separate process), collectors publishing live")
        print(f"{'server':<28}{'client':<16}{'offered flows/s':>16}{'received':>10}{'lost':>8}{'client flows/s':>16}")
        for rate in (args.follow_rate, 0):
            for via_relay, label in ((True, f"relay ({args.nodes} nodes, aio)"), (False, "one node (sync grpcio)")):
                for client, client_label in (("grpcio", "grpcio Python"), ("h2", "h2, bulk reads")):
                    r = follow(args.nodes, min(args.flows, 100_000), rate, via_relay, client)
                    offered = f"{r['offered']:.0f}" if rate else "max"
                    print(f"{label:<28}{client_label:<16}{offered:>16}{r['received']:>10}{r['lost']:>8}"
                          f"{r['rate']:>16.0f}", flush=True)
    if "memory" not in skip:
        for with_storage in [into == "chdb" for into in args.memory_into.split(",")]:
            into = "chdb (in this process)" if with_storage else "memory only"
            print(f"\n3. memory: {args.nodes} collectors x {args.memory_rate:.0f} flows/s, {into}, "
                  f"{args.memory_seconds} s")
            samples = memory(args.nodes, args.memory_rate, args.memory_seconds, with_storage)
            print(f"   RSS first {samples[0][1]:.0f} MiB, last {samples[-1][1]:.0f} MiB, max "
                  f"{max(s[1] for s in samples):.0f} MiB; Python heap blocks first {samples[0][2]}, "
                  f"last {samples[-1][2]}")


if __name__ == "__main__":
    main()
