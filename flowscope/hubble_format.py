"""What `hubble status`, `hubble list nodes|namespaces` and `hubble watch peers` print, from Hubble's
own format strings (hubble/pkg/printer, hubble/cmd/list, hubble/cmd/watch): Go's text/tabwriter
columns, Go's time.Duration text, thousands grouping, protojson for -o json."""

from __future__ import annotations

import json
from typing import Iterable

from google.protobuf import json_format
from google.protobuf.message import Message

from proto.observer import observer_pb2
from proto.peer import peer_pb2
from proto.relay import relay_pb2

NOT_AVAILABLE = "N/A"
MAX_INT64 = 2**63 - 1
_NODE_STATES = {relay_pb2.NODE_CONNECTED: "Connected", relay_pb2.NODE_UNAVAILABLE: "Unavailable",
                relay_pb2.NODE_GONE: "Gone", relay_pb2.NODE_ERROR: "Error"}


def tabwrite(lines: Iterable[str], minwidth: int = 2, padding: int = 3) -> str:
    """Go's tabwriter.NewWriter(w, minwidth, 0, padding, ' ', 0): tab-terminated cells are columns,
    a column's width holds over a block of consecutive lines that have that cell, the text after the
    last tab is not a cell."""
    rows = [line.split("\t") for line in lines]
    widths = [[0] * (len(r) - 1) for r in rows]

    def block(start: int, end: int, column: int) -> None:
        i = start
        while i < end:
            if len(rows[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < end and len(rows[j]) - 1 > column:
                j += 1
            width = max(minwidth, max(len(rows[k][column]) + padding for k in range(i, j)))
            for k in range(i, j):
                widths[k][column] = width
            block(i, j, column + 1)
            i = j

    block(0, len(rows), 0)
    return "".join("".join(c.ljust(w) for c, w in zip(r[:-1], ws)) + r[-1] + "\n" for r, ws in zip(rows, widths))


def uint64_grouping(n: int) -> str:
    return f"{n:,}"


def _frac(value: int, precision: int) -> str:
    whole, frac = divmod(value, 10**precision)
    digits = f"{frac:0{precision}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() ('16m40s', '5m1.515181665s', '1.5µs'); beyond int64, '<n>ns' as
    hubble's formatDurationNS."""
    if ns > MAX_INT64:
        return f"{ns}ns"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns == 0:
        return "0s"
    if ns < 1000:
        text = f"{ns}ns"
    elif ns < 1_000_000:
        text = _frac(ns, 3) + "µs"
    elif ns < 1_000_000_000:
        text = _frac(ns, 6) + "ms"
    else:
        minutes, seconds_ns = divmod(ns, 60 * 10**9)
        hours, minutes = divmod(minutes, 60)
        text = _frac(seconds_ns, 9) + "s"
        if hours:
            text = f"{hours}h{minutes}m{text}"
        elif minutes:
            text = f"{minutes}m{text}"
    return sign + text


def round_seconds(ns: int) -> int:
    """time.Duration.Round(time.Second): halves away from zero."""
    return (ns + 500_000_000) // 10**9 * 10**9


def to_json(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# --- hubble status -------------------------------------------------------------------------------

def healthcheck_line(server: str, status: str) -> str:
    return f"Healthcheck (via {server}): {status}\n"


def server_status(res: observer_pb2.ServerStatusResponse, output: str) -> str:
    connected = str(res.num_connected_nodes.value) if res.HasField("num_connected_nodes") else NOT_AVAILABLE
    unavailable = str(res.num_unavailable_nodes.value) if res.HasField("num_unavailable_nodes") else NOT_AVAILABLE
    rate = f"{res.flows_rate:.2f}" if res.flows_rate > 0 else NOT_AVAILABLE
    if output == "table":
        return tabwrite([
            "NUM FLOWS\tMAX FLOWS\tSEEN FLOWS\tFLOWS PER SECOND\tUPTIME\tNUM CONNECTED NODES\t"
            "NUM UNAVAILABLE NODES\tVERSION",
            f"{uint64_grouping(res.num_flows)}\t{uint64_grouping(res.max_flows)}\t"
            f"{uint64_grouping(res.seen_flows)}\t{rate}\t{go_duration(res.uptime_ns)}\t{connected}\t"
            f"{unavailable}\t{res.version}"])
    if output == "dict":
        return (f"          NUM FLOWS: {uint64_grouping(res.num_flows)}\n"
                f"          MAX FLOWS: {uint64_grouping(res.max_flows)}\n"
                f"         SEEN FLOWS: {uint64_grouping(res.seen_flows)}\n"
                f"   FLOWS PER SECOND: {rate}\n"
                f"             UPTIME: {go_duration(res.uptime_ns)}\n"
                f"NUM CONNECTED NODES: {connected}\n"
                f" NUM UNAVAIL. NODES: {unavailable}\n"
                f"            VERSION: {res.version}\n")
    if output == "json":
        return json.dumps(to_json(res), separators=(",", ":"), ensure_ascii=False) + "\n"
    ratio = f" ({res.num_flows / res.max_flows * 100:.2f}%)" if res.max_flows > 0 else ""
    out = f"Current/Max Flows: {uint64_grouping(res.num_flows)}/{uint64_grouping(res.max_flows)}{ratio}\n"
    if rate == NOT_AVAILABLE and res.uptime_ns > 0:
        rate = f"{res.seen_flows / (res.uptime_ns / 1e9):.2f}"
    out += f"Flows/s: {rate}\n"
    if res.HasField("num_connected_nodes"):
        total = (f"/{res.num_unavailable_nodes.value + res.num_connected_nodes.value}"
                 if res.HasField("num_unavailable_nodes") else "")
        out += f"Connected Nodes: {res.num_connected_nodes.value}{total}\n"
    missing = res.num_unavailable_nodes.value if res.HasField("num_unavailable_nodes") else 0
    if missing > 0:
        names = sorted(res.unavailable_nodes)
        if names:
            if missing > len(names):
                names.append(f"and {missing - len(names)} more...")
            out += f"Unavailable Nodes: {missing}\n  - " + "\n  - ".join(names) + "\n"
        else:
            out += f"Unavailable Nodes: {missing}\n"
    return out


# --- hubble list nodes / namespaces ----------------------------------------------------------------

def json_list(messages: Iterable[Message]) -> str:
    """json.MarshalIndent(list, "", "  ") of protojson objects, as `hubble list -o json`."""
    return json.dumps([to_json(m) for m in messages], indent=2, ensure_ascii=False) + "\n"


def node_table(nodes: Iterable[observer_pb2.Node], wide: bool = False) -> str:
    header = "NAME\tSTATUS\tAGE\tFLOWS/S\tCURRENT/MAX-FLOWS" + ("\tVERSION\tADDRESS\tTLS" if wide else "")
    lines = [header]
    for n in nodes:
        age = rate = ratio = NOT_AVAILABLE
        uptime = round_seconds(n.uptime_ns)
        if uptime > 0:
            age, rate = go_duration(uptime), f"{n.seen_flows / (uptime / 1e9):.2f}"
        if n.max_flows > 0:
            ratio = f"{n.num_flows}/{n.max_flows} ({n.num_flows / n.max_flows * 100:6.2f}%)"
        line = f"{n.name}\t{_NODE_STATES.get(n.state, 'Unknown')}\t{age}\t{rate}\t{ratio}"
        if wide:
            tls = ("Enabled" if n.tls.enabled else "Disabled") if n.HasField("tls") else NOT_AVAILABLE
            line += f"\t{n.version or NOT_AVAILABLE}\t{n.address}\t{tls}"
        lines.append(line)
    return tabwrite(lines)


def namespace_table(namespaces: Iterable[observer_pb2.Namespace], wide: bool = False) -> str:
    lines = ["NAMESPACE" + ("\tCLUSTER" if wide else "")]
    for ns in namespaces:
        lines.append(ns.namespace + (f"\t{ns.cluster}" if wide and ns.cluster else ""))
    return tabwrite(lines)


# --- hubble watch peers ----------------------------------------------------------------------------

def peer_line(change: peer_pb2.ChangeNotification) -> str:
    tls = f" (TLS.ServerName: {change.tls.server_name})" if change.HasField("tls") else ""
    kind = peer_pb2.ChangeNotificationType.Name(change.type) if change.type in \
        peer_pb2.ChangeNotificationType.values() else str(change.type)
    return f"{kind:<12} {change.address} {change.name}{tls}\n"
