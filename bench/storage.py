"""Storage benchmark (run by hand): the flows table of schema 8 and of schema 9 (migration 9: uuid as
UUID, ts an ALIAS, destination in the sort key) side by side, for Hubble-style random uuids and for
collector-style uuids (a per-process prefix + counter, one process per node): ingest flows/s into the
embedded engine, bytes per flow on disk, the migration 8 -> 9 itself; then service-map and
filtered-flow query latency over a large store at both schemas. With --all also the earlier
comparisons: before migration 7 (one thread, StoredFlow envelopes, whole raw), ClickHouse alone
(Native rows: its ceiling on this machine), a naive row-by-row INSERT and a clickhouse-server.

    .venv/bin/python bench/storage.py [--flows 200000] [--total 10000000] [--uuids random,collector]
                                      [--all [--skip-server]]
    .venv/bin/python bench/storage.py --targets [--flows 200000] [--skip-server] [--raw-bytes] [--costs]  # #17

The ingest runs use distinct generated flows (lab-like: 20 namespaces x 25 workloads, HTTP/DNS/L4,
some drops). For the query part the store is grown to --total rows inside ClickHouse (INSERT ... SELECT
of the generated flows with shifted times and new uuids; the aggregate views fire as for real inserts),
because generating 10M protobuf flows in Python on a 2-core machine takes longer than the rest.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from proto.flow import flow_pb2  # noqa: E402
from proto.wire import varint  # noqa: E402
from storage import FlowWriter, open_store  # noqa: E402
from storage.backend import quote  # noqa: E402
from storage.chdb_backend import INSERT_SETTINGS  # noqa: E402
from storage.ingest.columns import flows_to_columns  # noqa: E402
from storage.ingest.envelope import encode, encode_raws  # noqa: E402
from storage.schema import envelope  # noqa: E402
from storage.schema.columns import NAMES  # noqa: E402
from storage.schema.ingest_chain import SLIM_INGEST_COLUMNS, STEPS, facts_sql  # noqa: E402
from storage.schema.ingest_view import latest_select  # noqa: E402

NAMESPACES = [f"ns-{i:02d}" for i in range(20)]
WORKLOADS = [f"svc-{i:02d}" for i in range(25)]
HOUR = 3600 * 10**9


def make_flows(n: int, t0: int, span_ns: int, seed: int = 1, uuids: str = "random") -> list[flow_pb2.Flow]:
    """`uuids`: "random" (uuid4, as Hubble makes them) or "collector" (flowscope's collectors: a random
    24-character prefix per process, here one per node, and a 12-hex-digit counter)."""
    rnd = random.Random(seed)
    prefixes = [str(uuid.UUID(int=rnd.getrandbits(128), version=4))[:24] for _ in range(3)]
    peers = {(ns, wl): [(rnd.choice(NAMESPACES), rnd.choice(WORKLOADS)) for _ in range(4)]
             for ns in NAMESPACES for wl in WORKLOADS}
    keys = list(peers)
    flows = []
    for i in range(n):
        src = keys[rnd.randrange(len(keys))]
        dst = peers[src][rnd.randrange(4)]
        uid = f"{prefixes[i % 3]}{i // 3 + 1:012x}" if uuids == "collector" else str(uuid.uuid4())
        f = flow_pb2.Flow(uuid=uid, node_name=f"node-{i % 3}", Type=flow_pb2.L3_L4)
        f.time.FromNanoseconds(t0 + i * span_ns // n)
        kind = rnd.random()
        f.verdict = flow_pb2.DROPPED if kind < 0.02 else flow_pb2.FORWARDED
        f.IP.source = f"10.244.{NAMESPACES.index(src[0])}.{WORKLOADS.index(src[1]) + 10}"
        f.IP.destination = f"10.244.{NAMESPACES.index(dst[0])}.{WORKLOADS.index(dst[1]) + 10}"
        f.IP.ipVersion = flow_pb2.IPv4
        reply = rnd.random() < 0.4
        f.is_reply.value = reply
        if reply:  # a reply travels server -> client
            f.IP.source, f.IP.destination = f.IP.destination, f.IP.source
        for ep, (ns, wl) in ((f.source, dst if reply else src), (f.destination, src if reply else dst)):
            ep.namespace, ep.pod_name = ns, f"{wl}-5d8f7-{rnd.randrange(3)}"
            ep.identity = 256 + NAMESPACES.index(ns) * 25 + WORKLOADS.index(wl)
            ep.labels.extend([f"k8s:app={wl}", f"k8s:io.kubernetes.pod.namespace={ns}"])
            ep.workloads.add(name=wl, kind="Deployment")
        f.traffic_direction = flow_pb2.EGRESS
        if kind < 0.1:
            ports = (53, 40000 + i % 20000) if reply else (40000 + i % 20000, 53)
            f.l4.UDP.source_port, f.l4.UDP.destination_port = ports
            f.Type = flow_pb2.L7
            f.l7.type = flow_pb2.RESPONSE if reply else flow_pb2.REQUEST
            f.l7.dns.query = f"{dst[1]}.{dst[0]}.svc.cluster.local."
            f.l7.dns.rcode = 3 if kind < 0.03 else 0
        else:
            ports = (8080, 40000 + i % 20000) if reply else (40000 + i % 20000, 8080)
            f.l4.TCP.source_port, f.l4.TCP.destination_port = ports
            f.l4.TCP.flags.ACK = True
            if kind < 0.5:
                f.Type = flow_pb2.L7
                f.l7.type = flow_pb2.RESPONSE if reply else flow_pb2.REQUEST
                f.l7.http.method, f.l7.http.url = "GET", f"http://{dst[1]}:8080/api/items/{i % 100}"
                if reply:
                    f.l7.http.code = 500 if kind < 0.12 else 200
                    f.l7.latency_ns = rnd.randrange(200_000, 50_000_000)
        f.counters.packets_forward, f.counters.bytes_forward = 10, rnd.randrange(500, 50_000)
        f.counters.packets_reverse, f.counters.bytes_reverse = 8, rnd.randrange(500, 200_000)
        flows.append(f)
    return flows


def ingest(store, flows, tmp: pathlib.Path, label: str) -> float:
    spool = tmp / f"spool-{label}"
    start = time.perf_counter()
    with FlowWriter(store, spool_dir=str(spool), batch_rows=100_000, max_pending_rows=1_000_000) as writer:
        for i in range(0, len(flows), 10_000):
            writer.write(flows[i:i + 10_000])
        writer.flush()
    elapsed = time.perf_counter() - start
    assert store.count() >= len(flows), f"{label}: not all flows stored"
    return len(flows) / elapsed


def ingest_before(store, flows) -> float:
    """The embedded path as it was before migration 7 (store at schema 6): one thread serializes,
    encodes StoredFlow envelopes (whole raw) and inserts, batch after batch of 100,000, with
    ClickHouse's default optimize_on_insert."""
    schema = envelope.write_schema(f"{store.url.path}.format_schemas", envelope.MESSAGE)
    start = time.perf_counter()
    for i in range(0, len(flows), 100_000):
        batch = flows[i:i + 100_000]
        data = encode(batch, [f.SerializeToString() for f in batch], compact=False)
        store.backend._stream_insert(f"INSERT INTO {store.db}.flows_ingest SETTINGS format_schema = "
                                     f"'{schema}'", "Protobuf", data)
    return len(flows) / (time.perf_counter() - start)


def python_encode(flows) -> float:
    """The Python half alone: serialize + CompactFlow envelopes."""
    start = time.perf_counter()
    for i in range(0, len(flows), 50_000):
        batch = flows[i:i + 50_000]
        encode(batch, [f.SerializeToString() for f in batch])
    return len(flows) / (time.perf_counter() - start)


def clickhouse_alone(store, ceiling_store) -> tuple[float, float]:
    """ClickHouse's own ceiling: the rows `store` holds, inserted again in ClickHouse's Native format
    (no Python, no protobuf parsing) into a copy of the flows table alone, and into the flows table
    of `ceiling_store` with its aggregate views."""
    columns, native = native_rows(store)
    rows = store.count()
    store.backend.execute(f"CREATE TABLE {store.db}.flows_copy AS {store.db}.flows")
    rates = []
    for table in (f"{store.db}.flows_copy", f"{ceiling_store.db}.flows"):
        start = time.perf_counter()
        store.backend._stream_insert(f"INSERT INTO {table} ({columns}) SETTINGS {INSERT_SETTINGS}", "Native",
                                     native)
        rates.append(rows / (time.perf_counter() - start))
    store.backend.execute(f"DROP TABLE {store.db}.flows_copy")
    return rates[0], rates[1]


def native_rows(store) -> tuple[str, bytes]:
    """(column list, the rows `store`'s flows table holds in ClickHouse's Native format)."""
    columns = ", ".join(stored_names(store))
    return columns, store.backend._query(f"SELECT {columns} FROM {store.db}.flows", "Native").bytes()


def python_columns(store, flows) -> float:
    """The Python column path (what a server gets) into the embedded engine, for comparison."""
    start = time.perf_counter()
    for i in range(0, len(flows), 100_000):
        store.insert_columns(flows_to_columns(flows[i:i + 100_000]))
    return len(flows) / (time.perf_counter() - start)


def row_by_row(store, flows) -> float:
    """Naive: one INSERT ... VALUES per flow (what the storage guides warn against)."""
    cols = flows_to_columns(flows)
    start = time.perf_counter()
    for i in range(len(flows)):
        values = ", ".join(f"unhex('{cols[n][i].hex()}')" if n == "raw" else quote(cols[n][i]) for n in NAMES)
        store.backend.execute(f"INSERT INTO {store.db}.flows ({', '.join(NAMES)}) SELECT {values}")
    return len(flows) / (time.perf_counter() - start)


def bytes_per_flow(store) -> tuple[float, float]:
    store.backend.execute(f"OPTIMIZE TABLE {store.db}.flows FINAL")
    rows = store.backend.rows(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND "
        f"database = {quote(store.db)} GROUP BY table")
    sizes = {t: (r, b) for t, r, b in rows}
    flows_rows, flows_bytes = sizes["flows"]
    aggregates = sum(b for t, (r, b) in sizes.items() if t not in ("flows", "schema_migrations"))
    return flows_bytes / flows_rows, aggregates / flows_rows


def stored_names(store) -> list[str]:
    return [n for (n,) in store.backend.rows(
        f"SELECT name FROM system.columns WHERE database = {quote(store.db)} AND table = 'flows' "
        "AND default_kind = ''")]


def grow(store, total: int, span_ns: int, uuids: str = "random") -> float:
    """Copies the stored flows with shifted times and new uuids until `total` rows (collector-style
    uuids: each copy as if from other collector processes, a new first 8 hex digits)."""
    have = store.count()
    start = time.perf_counter()
    copy = 1
    names = stored_names(store)
    collector = "concat(lower(hex(toUInt32({copy}))), substring({uuid}, 9))"
    new_uuid = {("uuid", "random"): "toString(generateUUIDv4())",
                ("uuid", "collector"): collector.format(copy="{copy}", uuid="uuid"),
                ("uuid_bin", "random"): "generateUUIDv4()",
                ("uuid_bin", "collector"): f"toUUID({collector.format(copy='{copy}', uuid='toString(uuid_bin)')})"}
    select = ", ".join("time_ns + {shift}" if n == "time_ns" else new_uuid.get((n, uuids), n) for n in names)
    base = have
    while have < total:
        shift = copy * span_ns
        store.backend.execute(
            f"INSERT INTO {store.db}.flows ({', '.join(names)}) SELECT {select.format(shift=shift, copy=copy)} "
            f"FROM {store.db}.flows WHERE time_ns < (SELECT min(time_ns) FROM {store.db}.flows) + {span_ns} "
            f"LIMIT {min(base, total - have)}")
        have = store.count()
        copy += 1
        print(f"  grown to {have:,} rows", file=sys.stderr)
    return time.perf_counter() - start


def timed(fn, runs: int = 5) -> float:
    fn()  # warm caches once, as a UI refreshing the same view would
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def earlier(args, flows, tmp: pathlib.Path) -> list[tuple[str, str]]:
    """The comparisons of earlier runs (--all): schema 6, ClickHouse alone, Python columns, naive
    INSERTs, a clickhouse-server."""
    rows: list[tuple[str, str]] = []
    before = open_store(f"chdb://{tmp}/chdb?database=bench_before")
    before.migrate(upto=6)
    rows.append(("ingest, embedded, before (1 thread, StoredFlow, whole raw, schema 6)",
                 f"{ingest_before(before, flows):,.0f} flows/s"))
    store = open_store(f"chdb://{tmp}/chdb?database=bench")
    store.migrate()
    rows.append(("ingest, embedded, now (FlowWriter: pipelined, CompactFlow, latest schema)",
                 f"{ingest(store, flows, tmp, 'chdb'):,.0f} flows/s"))
    rows.append(("  its Python half alone (serialize + CompactFlow envelopes)",
                 f"{python_encode(flows):,.0f} flows/s"))
    ceiling_store = open_store(f"chdb://{tmp}/chdb?database=bench_ceiling")
    ceiling_store.migrate()
    table_only, with_views = clickhouse_alone(store, ceiling_store)
    rows.append(("ClickHouse alone, Native rows -> flows table (no views)", f"{table_only:,.0f} flows/s"))
    rows.append(("ClickHouse alone, Native rows -> flows + 4 aggregate views", f"{with_views:,.0f} flows/s"))
    ceiling_store.drop_database()
    cols_store = open_store(f"chdb://{tmp}/chdb?database=bench_columns")
    cols_store.migrate()
    rows.append(("ingest, embedded (Python columns -> Arrow)", f"{python_columns(cols_store, flows):,.0f} flows/s"))
    naive = flows[:300]
    rows.append(("ingest, embedded, naive row-by-row INSERT", f"{row_by_row(cols_store, naive):,.0f} flows/s"))
    for label, s_ in (("before (schema 6)", before), ("now (latest schema)", store)):
        per_flow, aggregates = bytes_per_flow(s_)
        rows.append((f"bytes/flow on disk, embedded {label} (flows table; + aggregates)",
                     f"{per_flow:.1f} (+ {aggregates:.1f})"))
    for s_ in (before, store, cols_store):
        s_.drop_database()
    if not args.skip_server:
        from lab.testbed.clickhouse import new_server
        server = new_server(tmp / "server")
        try:
            sstore = open_store(server.store_url("bench"))
            sstore.migrate()
            rows.append(("ingest, server 18.16 (FlowWriter, native columnar)",
                         f"{ingest(sstore, flows, tmp, 'server'):,.0f} flows/s"))
            rows.append(("ingest, server 18.16, naive row-by-row INSERT",
                         f"{row_by_row(sstore, naive):,.0f} flows/s"))
            s_per_flow, s_aggr = bytes_per_flow(sstore)
            rows.append(("bytes/flow on disk, server 18.16 (flows; + aggregates)",
                         f"{s_per_flow:.1f} (+ {s_aggr:.1f})"))
        finally:
            server.stop()
    return rows


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process (chdb runs in it) or of process `pid`."""
    if pid is None:
        return time.process_time()
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metered(fn, rows: int, server_pid: int | None = None) -> tuple[float, str]:
    """Runs fn(): (flows/s, "flows/s; CPU us per flow of this process [+ the server's]")."""
    cpu, server_cpu, start = _cpu_s(), _cpu_s(server_pid) if server_pid else 0.0, time.perf_counter()
    fn()
    rate = rows / (time.perf_counter() - start)
    text = f"{rate:,.0f} flows/s; CPU {1e6 * (_cpu_s() - cpu) / rows:.1f} us/flow"
    if server_pid:
        text += f" + server {1e6 * (_cpu_s(server_pid) - server_cpu) / rows:.1f}"
    return rate, text


def targets(flows, tmp: pathlib.Path, skip_server: bool) -> list[tuple[str, str]]:
    """Issue #17's targets side by side in one run: our embedded ingest (FlowWriter) against ClickHouse's
    own "Native rows -> flows + 4 views", and our server ingest (FlowWriter: envelopes -> Native in the
    embedded engine -> HTTP) against raw HTTP INSERT FORMAT Native of ready bytes into the same server,
    and the server's previous path (Python columns through clickhouse-driver). Ours, the reference,
    ours again: the mean of ours is compared. CPU per flow: time.process_time of this process (chdb
    and the writer's threads), and of the server's process."""
    rows: list[tuple[str, str]] = []
    store = open_store(f"chdb://{tmp}/chdb?database=bench_targets")
    store.migrate()
    ceiling_store = open_store(f"chdb://{tmp}/chdb?database=bench_targets_ceiling")
    ceiling_store.migrate()
    before = open_store(f"chdb://{tmp}/chdb?database=bench_targets_9")
    before.migrate(upto=9)  # the single ingest view and Python's facts, as before migrations 10-11
    n = len(flows)
    ours = [metered(lambda: ingest(store, flows, tmp, "targets-1"), n)]
    single = metered(lambda: ingest(before, flows, tmp, "targets-9"), n)
    columns, native = native_rows(store)
    reference = metered(lambda: store.backend._stream_insert(
        f"INSERT INTO {ceiling_store.db}.flows ({columns}) SETTINGS {INSERT_SETTINGS}", "Native", native), n)
    store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
    ours.append(metered(lambda: ingest(store, flows, tmp, "targets-2"), n))
    store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
    ready = [store.encode_flows(None, [f.SerializeToString() for f in flows[i:i + 100_000]])
             for i in range(0, n, 100_000)]
    clickhouse_side = metered(lambda: [store.insert_encoded(batch) for batch in ready], n)
    rows += [("embedded: ours (FlowWriter, envelopes -> ingest views -> flows + 4 views)",
              " | ".join(text for _, text in ours)),
             ("embedded: ours, ClickHouse's part alone (ready envelopes, 100,000 per insert)", clickhouse_side[1]),
             ("embedded: before, schema 9 (one ingest view, facts from Python)", single[1]),
             ("embedded: ClickHouse alone (Native rows -> flows + 4 views)", reference[1]),
             ("embedded: ours / ClickHouse alone (target >= 0.8)",
              f"{statistics.mean(r for r, _ in ours) / reference[0]:.2f}")]
    for s_ in (store, ceiling_store, before):
        s_.drop_database()
    if skip_server:
        return rows
    from lab.testbed.clickhouse import new_server
    server = new_server(tmp / "server-targets")
    try:
        pid = server.process.pid
        stores = {name: open_store(server.store_url(name)) for name in ("ours", "raw", "columns")}
        for s_ in stores.values():
            s_.migrate()
        ours = [metered(lambda: ingest(stores["ours"], flows, tmp, "server-1"), n, pid)]
        batches = [stores["ours"].encode_flows(flows[i:i + 100_000], [f.SerializeToString() for f in
                                                                    flows[i:i + 100_000]])
                   for i in range(0, len(flows), 100_000)]
        names = stores["ours"]._converter().columns

        def post() -> None:
            for batch in batches:
                stores["raw"].backend.insert_native(stores["raw"].layout.table("flows"), names, batch.native)
        raw = metered(post, n, pid)
        stores["ours"].backend.execute(f"TRUNCATE TABLE {stores['ours'].db}.flows")
        ours.append(metered(lambda: ingest(stores["ours"], flows, tmp, "server-2"), n, pid))
        columns = metered(lambda: python_columns(stores["columns"], flows), n, pid)
        rows += [("server 18.16: ours (FlowWriter, envelopes -> Native in chdb -> HTTP)",
                  " | ".join(text for _, text in ours)),
                 ("server 18.16: raw HTTP INSERT FORMAT Native of ready bytes, with views", raw[1]),
                 ("server 18.16: before (Python columns through clickhouse-driver)", columns[1]),
                 ("server 18.16: ours / raw Native (target >= 0.7)",
                  f"{statistics.mean(r for r, _ in ours) / raw[0]:.2f}")]
    finally:
        server.stop()
    return rows


def _best_cpu(fn, runs: int = 3) -> float:
    """The least CPU seconds of this process (chdb runs in it) over `runs` calls of fn."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def costs(flows, tmp: pathlib.Path) -> list[tuple[str, str]]:
    """Where the embedded ingest's CPU goes, in one process: the envelope's parse against one copy of
    each flow (plain Flow messages, length-delimited and ProtobufList; the bytes alone as RowBinary
    Strings), each view of the chain (the insert with it and the ones after it dropped, from the end:
    fixed CPU of a 1-flow insert and per flow of one len(flows) insert beyond that), against
    ClickHouse's own Native rows -> flows + 4 views of the same rows, and Python's framing."""
    n, raws = len(flows), [f.SerializeToString() for f in flows]
    store = open_store(f"chdb://{tmp}/chdb?database=bench_costs")
    store.migrate()
    ceiling = open_store(f"chdb://{tmp}/chdb?database=bench_costs_ceiling")
    ceiling.migrate()
    backend, db, schema = store.backend, store.db, envelope.write_schema(str(tmp / "costs"))
    many, one = encode_raws(raws), encode_raws(raws[:1])
    plain = b"".join(varint(len(r)) + r for r in raws)  # = RowBinary of one String column
    files = {name: tmp / f"costs-{name}.bin" for name in ("envelopes", "plain", "list")}
    files["envelopes"].write_bytes(many)
    files["plain"].write_bytes(plain)
    files["list"].write_bytes(varint(len(plain) + n) + b"".join(b"\x0a" + varint(len(r)) + r for r in raws))
    flow_columns = [c[len("flow_"):] for c in SLIM_INGEST_COLUMNS if c.startswith("flow_")]
    schema_file = schema.split(":")[0]
    parses = [("the envelope as ingested (each flow 3 times), all its columns", "envelopes", "Protobuf",
               schema, SLIM_INGEST_COLUMNS),
              ("one copy: plain Flow messages, length-delimited (Protobuf), the flow_ columns", "plain",
               "Protobuf", f"{schema_file}:Flow", flow_columns),
              ("one copy: plain Flow messages, ProtobufList, the flow_ columns", "list", "ProtobufList",
               f"{schema_file}:Flow", flow_columns),
              ("the bytes alone (RowBinary String)", "plain", "RowBinary", schema, ["raw String"])]
    rows = [("Python: encode_raws (framing the envelopes)",
             f"{1e6 * _best_cpu(lambda: encode_raws(raws)) / n:.2f} us/flow")]
    for i, (label, name, fmt, fmt_schema, cols) in enumerate(parses):
        backend.execute(f"CREATE TABLE {db}.parse_{i} ({', '.join(cols)}) ENGINE = Null")
        sql = (f"INSERT INTO {db}.parse_{i} SELECT * FROM file({quote(str(files[name]))}, '{fmt}', "
               f"{quote(', '.join(cols))}) SETTINGS format_schema = {quote(fmt_schema)}")
        rows.append((f"parse into a Null table: {label}",
                     f"{1e6 * _best_cpu(lambda: backend.execute(sql)) / n:.2f} us/flow"))

    def insert(data: bytes) -> None:
        backend.insert_protobuf(f"{db}.flows_ingest", data, schema)

    def measured() -> tuple[float, float]:
        fixed = _best_cpu(lambda: insert(one))
        return fixed, (_best_cpu(lambda: insert(many)) - fixed) / n

    # background merges of the tables filled so far would count in whichever insert runs beside them
    backend.execute("SYSTEM STOP MERGES")
    stages = [measured()]
    columns, native = native_rows(store)
    reference = _best_cpu(lambda: ceiling.backend._stream_insert(
        f"INSERT INTO {ceiling.db}.flows ({columns}) SETTINGS {INSERT_SETTINGS}", "Native", native), 1)
    views = ["flows_ingest_mv"] + [f"flows_ingest_{i}_mv" for i in range(STEPS, -1, -1)]
    for view in views:  # from the end: each drop leaves the insert without that view and the ones after
        backend.execute(f"DROP TABLE {db}.{view}")
        stages.append(measured())
    rows.append(("ClickHouse alone: Native rows -> flows + 4 views (the same rows)",
                 f"{1e6 * reference / store.count():.2f} us/flow"))
    names = ["the flows table and its 4 views, through the last view's SELECT"] + [
        f"view {v} (step {v.split('_')[2]})" for v in views[1:-1]] + ["view flows_ingest_0_mv (the facts)"]
    for name, (fixed, per), (fixed_after, per_after) in zip(names, stages, stages[1:]):
        rows.append((f"chain: {name}", f"{1e3 * (fixed - fixed_after):.0f} ms per insert + "
                                       f"{1e6 * (per - per_after):.2f} us/flow"))
    rows.append(("chain: the parse into flows_ingest alone", f"{1e3 * stages[-1][0]:.0f} ms per insert + "
                                                              f"{1e6 * stages[-1][1]:.2f} us/flow"))
    rows.append(("chain: all of it", f"{1e3 * stages[0][0]:.0f} ms per insert + {1e6 * stages[0][1]:.2f} us/flow"))
    backend.execute("SYSTEM START MERGES")
    for s_ in (store, ceiling):
        s_.drop_database()
    return rows


def raw_bytes(flows, tmp: pathlib.Path) -> list[tuple[str, str]]:
    """Bytes per flow on disk (flows table after OPTIMIZE FINAL, its codecs) with raw cut as the
    ingest views cut it, and with raw whole but for time and uuid (the server path's rows)."""
    rows = []
    for cut in (True, False):
        store = open_store(f"chdb://{tmp}/chdb?database=bench_raw_{'cut' if cut else 'whole'}")
        store.migrate()
        if not cut:  # the final view reads the SQL that keeps raw whole
            db = store.db
            for name in ["flows_ingest_mv"] + [f"flows_ingest_{i}_mv" for i in range(5)]:
                store.backend.execute(f"DROP TABLE IF EXISTS {db}.{name}")
            select, _ = latest_select(f"(SELECT {facts_sql()} FROM {db}.flows_ingest)", False, cut=False)
            store.backend.execute(f"CREATE MATERIALIZED VIEW {db}.flows_ingest_mv TO {db}.flows AS {select}")
        ingest(store, flows, tmp, f"raw-{cut}")
        per_flow, _ = bytes_per_flow(store)
        (raw,), = store.backend.rows(
            "SELECT sum(column_data_compressed_bytes) / sum(rows) FROM system.parts_columns WHERE active AND "
            f"database = {quote(store.db)} AND table = 'flows' AND column = 'raw'")
        rows.append((f"bytes/flow on disk, raw {'cut (as stored)' if cut else 'whole but time and uuid'}",
                     f"{per_flow:.1f} (raw column {raw:.1f})"))
        store.drop_database()
    return rows


def compare_schemas(flows, tmp: pathlib.Path, style: str, first: int) -> tuple[list[tuple[str, str]], object]:
    """Schema 8 and 9 side by side for one uuid style: ingest (the schema `first` first), bytes, and
    the migration of the schema-8 store; returns the rows and the schema-8 store (still at 8)."""
    stores = {v: open_store(f"chdb://{tmp}/chdb?database=bench{v}_{style}") for v in (8, 9)}
    stores[8].migrate(upto=8)
    stores[9].migrate()
    rates = {v: ingest(stores[v], flows, tmp, f"{v}-{style}") for v in ((8, 9) if first == 8 else (9, 8))}
    sizes = {v: bytes_per_flow(stores[v]) for v in (8, 9)}
    stores[9].drop_database()
    return [(f"ingest flows/s, embedded FlowWriter, {style} uuids", f"{rates[8]:,.0f}", f"{rates[9]:,.0f}"),
            (f"bytes/flow on disk, {style} uuids: flows table (+ aggregates)",
             f"{sizes[8][0]:.1f} (+ {sizes[8][1]:.1f})", f"{sizes[9][0]:.1f} (+ {sizes[9][1]:.1f})")], stores[8]


def migrate_timed(store) -> tuple[float, float]:
    """Migrates a schema-8 store to 9: (seconds, bytes per flow after)."""
    start = time.perf_counter()
    assert store.migrate()[0] == 9
    return time.perf_counter() - start, bytes_per_flow(store)[0]


def queries(store, t0: int) -> list[tuple[str, object]]:
    end = t0 + 24 * HOUR
    f = flow_pb2.FlowFilter
    (some_uuid,) = store.backend.rows(f"SELECT uuid FROM {store.db}.flows WHERE time_ns > {t0 + 20 * HOUR} LIMIT 1")[0]
    recent = [u for (u,) in store.backend.rows(
        f"SELECT uuid FROM {store.db}.flows WHERE time_ns > {end - 60 * 10**9} LIMIT 10000")]
    return [
        ("service map, last 1 h of 24 h", lambda: store.service_map(end - HOUR, end)),
        ("service map, whole 24 h", lambda: store.service_map(t0, end)),
        ("service map, 1 h, 2 namespaces", lambda: store.service_map(end - HOUR, end, ["ns-03", "ns-07"])),
        ("what changed, 1 h vs previous 1 h", lambda: store.service_map_changes(end - HOUR, end)),
        ("query_flows last 100, 5 min, no filter", lambda: store.query_flows(since=end - 300 * 10**9, until=end)),
        ("query_flows last 100, pod ns-03/ + port 8080, 24 h",
         lambda: store.query_flows([f(source_pod=["ns-03/"], destination_port=["8080"])], since=t0,
                                   until=end, limit=100)),
        ("query_flows last 100, HTTP 5xx, 24 h",
         lambda: store.query_flows([f(http_status_code=["5+"])], since=t0, until=end)),
        ("count, label app=svc-07 & DROPPED, 24 h",
         lambda: store.count([f(source_label=["app=svc-07"], verdict=[flow_pb2.DROPPED])], since=t0, until=end)),
        ("flows_page 50 rows, sorted by latency, 1 h", lambda: store.flows_page(
            since=end - HOUR, until=end, sort="latency_ns")),
        ("get_flow(uuid) (no time range)", lambda: store.get_flow(some_uuid)),
        ("existing_uuids, 10,000 of the last minute (writer replay)",
         lambda: store.existing_uuids(recent, end - 60 * 10**9, end)),
        ("HTTP RED 24 h, 5 min step", lambda: store.http_red(t0, end, step_s=300)),
        ("top talkers 24 h", lambda: store.top_talkers(t0, end)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=200_000, help="generated flows per ingest run")
    parser.add_argument("--total", type=int, default=10_000_000,
                        help="rows for the query benchmark (0: skip it)")
    parser.add_argument("--uuids", default="random,collector",
                        help="uuid styles, comma-separated: random (Hubble's uuid4), collector (prefix + "
                             "counter); the query benchmark uses the last")
    parser.add_argument("--all", action="store_true", help="also the earlier comparisons (schema 6, "
                        "ClickHouse alone, Python columns, naive INSERTs, server)")
    parser.add_argument("--skip-server", action="store_true", help="with --all/--targets: no clickhouse-server")
    parser.add_argument("--targets", action="store_true", help="only issue #17's ingest targets, side by side")
    parser.add_argument("--costs", action="store_true",
                        help="with --targets: also where the embedded ingest's CPU goes, step by step")
    parser.add_argument("--raw-bytes", action="store_true",
                        help="with --targets: also bytes per flow with raw cut vs whole but time and uuid")
    args = parser.parse_args()
    styles = args.uuids.split(",")
    if not styles or set(styles) - {"random", "collector"}:
        parser.error(f"--uuids {args.uuids!r}: expected random and/or collector, comma-separated")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fs-bench-storage-"))
    t0 = 1_790_000_000 * 10**9
    span = 24 * HOUR * args.flows // (args.total or args.flows)  # the flows' share of 24 h
    print(f"load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    table: list[tuple[str, str, str]] = []
    rows: list[tuple[str, str]] = []
    if args.targets:
        print(f"generating {args.flows:,} flows ...", file=sys.stderr)
        flows = make_flows(args.flows, t0, span, uuids=styles[-1])
        rows = (targets(flows, tmp, args.skip_server) + (raw_bytes(flows, tmp) if args.raw_bytes else [])
                + (costs(flows, tmp) if args.costs else []))
        styles, args.total = [], 0
    for i, style in enumerate(styles):
        print(f"generating {args.flows:,} flows, {style} uuids ...", file=sys.stderr)
        flows = make_flows(args.flows, t0, span, uuids=style)
        compared, store8 = compare_schemas(flows, tmp, style, first=8 if i % 2 == 0 else 9)
        table += compared
        if style != styles[-1] or not args.total:
            seconds, after = migrate_timed(store8)
            table.append((f"migration 8 -> 9 of those flows, {style} uuids: seconds; bytes/flow after",
                          "", f"{seconds:.1f} s; {after:.1f}"))
            store8.drop_database()
    if args.all:
        rows += earlier(args, flows, tmp)
    if args.total:
        store = store8
        grow_s = grow(store, args.total, span, styles[-1])
        total = store.count()
        rows.append((f"grow the schema-8 store to {total:,} rows (INSERT SELECT + views)", f"{grow_s:.0f} s"))
        big8 = bytes_per_flow(store)
        before = [(name, timed(fn)) for name, fn in queries(store, t0)]
        seconds, _ = migrate_timed(store)
        big9 = bytes_per_flow(store)
        after = [(name, timed(fn)) for name, fn in queries(store, t0)]
        table.append((f"migration 8 -> 9 at {total:,} rows, {styles[-1]} uuids", "", f"{seconds:.0f} s"))
        table.append((f"bytes/flow on disk at {total:,} rows (flows; + aggregates)",
                      f"{big8[0]:.1f} (+ {big8[1]:.1f})", f"{big9[0]:.1f} (+ {big9[1]:.1f})"))
        for (name, ms8), (_, ms9) in zip(before, after):
            table.append((f"{name} (ms, median of 5)", f"{ms8:.0f}", f"{ms9:.0f}"))
    print(f"\nstorage benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {args.flows:,} generated flows per ingest run, load average at the "
          f"end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    width = max(len(r[0]) for r in table + rows)
    if table:
        print(f"  {'':<{width}}  {'schema 8':>20}  {'schema 9':>20}")
    for name, v8, v9 in table:
        print(f"  {name:<{width}}  {v8:>20}  {v9:>20}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
