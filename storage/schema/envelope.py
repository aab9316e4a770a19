"""The envelope rows of the embedded engine's ingest table: the message definitions ClickHouse parses
(format Protobuf), each field number defined once here for the Python encoder (storage.ingest.envelope)
and the format schema alike.

A row is `CompactFlow { Flow flow = 1; bytes raw = 2; uint32 is_reply = 3; uint32 l4 = 4; uint32 l7 = 5;
uint32 source_kind = 6; uint32 destination_kind = 7; FlowParts parts = 8; }`: fields 1, 2 and 8 carry the
same flow bytes (a message and a bytes field share the wire encoding, so no re-encoding), parsed as a
Flow, kept as bytes, and parsed as FlowParts (Flow's top-level fields as bytes, which locate what `raw`
may leave out). Fields 3-5 carried what the Flow columns cannot tell ClickHouse: whether is_reply is set, and
which L4/L7 oneof is set; fields 6-7 each endpoint's kind where it is cheap to decide in Python (costly in
SQL: array lambdas per row). Since migration 11 ClickHouse works these out from the flow bytes itself
(storage.schema.ingest_chain) and the envelope is the flow's bytes three times, nothing else. `StoredFlow` (no parts; raw without time and uuid) is the envelope of stores not
migrated to 7 yet.

The schema file is written next to the chdb data (ClickHouse has no google/protobuf well-known types
built in, so Timestamp, BoolValue, Int32Value and Any are replaced by wire-identical local messages).
"""

from __future__ import annotations

import pathlib
import re

from proto.flow import flow_pb2
from storage.schema.columns import L7_PROTO, RESERVED_KINDS

FLOW_PROTO = pathlib.Path(flow_pb2.__file__).with_name("flow.proto")
MESSAGE = "StoredFlow"
COMPACT_MESSAGE = "CompactFlow"
# The envelope's fields: name -> (protobuf type, number); CompactFlow has all, StoredFlow all but parts.
FIELDS = {"flow": ("Flow", 1), "raw": ("bytes", 2), "is_reply": ("uint32", 3), "l4": ("uint32", 4),
          "l7": ("uint32", 5), "source_kind": ("uint32", 6), "destination_kind": ("uint32", 7),
          "parts": ("FlowParts", 8)}
# FlowParts: Flow's top-level fields that locate the ones `raw` may leave out (messages read as bytes:
# the same wire encoding), numbered as flow.proto numbers them.
PART_TYPES = {"time": "bytes", "drop_reason": "uint32", "ethernet": "bytes", "IP": "bytes", "l4": "bytes",
              "source": "bytes", "destination": "bytes", "l7": "bytes", "counters": "bytes",
              "l7_partial": "bool"}
PART_FIELDS = {name: (kind, flow_pb2.Flow.DESCRIPTOR.fields_by_name[name].number)
               for name, kind in PART_TYPES.items()}
# Read by the ingest of migration 11 only (storage.schema.ingest_chain): is_reply's bytes, NULL when the
# flow has none (a BoolValue holding false is present but empty). Older ingest tables have no column
# for it, and ClickHouse skips a field no column takes.
PRESENCE_FIELDS = {"is_reply": ("bytes", flow_pb2.Flow.DESCRIPTOR.fields_by_name["is_reply"].number)}
CH_TYPES = {"bytes": "String", "uint32": "UInt32", "bool": "UInt8"}
# The fields a view may cut, in the order they appear in raw: migration 7 cut four, migration 8 six.
CUT_7 = ("IP", "source", "destination", "counters")
CUT = ("IP", "l4", "source", "destination", "l7", "counters")
_WELL_KNOWN = {"Timestamp": "int64 seconds = 1; int32 nanos = 2;", "BoolValue": "bool value = 1;",
               "Int32Value": "int32 value = 1;", "Any": "string type_url = 1; bytes value = 2;"}
# Codes of envelope fields 4 and 5 (the L4 and L7 oneof set; 0 none).
L4_CODES = {None: 0, "TCP": 1, "UDP": 2, "ICMPv4": 3, "ICMPv6": 4, "SCTP": 5}
L7_CODES = L7_PROTO
# Endpoint kind codes of envelope fields 6/7 (1-based into KINDS); 0 = decided in SQL from the labels.
KINDS = ("pod", "host", "world", "unmanaged", "health", "init", "remote-node", "kube-apiserver")
IDENTITY_KIND = {identity: KINDS.index(kind) + 1 for identity, kind in RESERVED_KINDS.items()}


def _message(name: str, fields: dict[str, tuple[str, int]]) -> str:
    return f"message {name} {{ " + " ".join(f"{kind} {field} = {number};"
                                          for field, (kind, number) in fields.items()) + " }\n"


def schema_text() -> str:
    text = re.sub(r'import "google/protobuf/[a-z_]+\.proto";\n', "", FLOW_PROTO.read_text())
    for name, body in _WELL_KNOWN.items():
        text = text.replace(f"google.protobuf.{name}", f"WK{name}") + f"\nmessage WK{name} {{ {body} }}"
    stored = {name: field for name, field in FIELDS.items() if name != "parts"}
    return (text + "\n" + _message(MESSAGE, stored) + _message("FlowParts", {**PART_FIELDS, **PRESENCE_FIELDS})
            + _message(COMPACT_MESSAGE, FIELDS))


def write_schema(directory: str, message: str = COMPACT_MESSAGE) -> str:
    """Writes the schema file (if changed); returns the `format_schema` setting value."""
    path = pathlib.Path(directory) / "flowscope_ingest.proto"
    text = schema_text()
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return f"{path}:{message}"
