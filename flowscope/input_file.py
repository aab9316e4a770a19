"""`observe --input-file`: a GetFlows answer from a file of Hubble JSON lines instead of a server, as
`hubble observe --input-file` (hubble/cmd/observe/io_reader_observer.go) gives it — one
GetFlowsResponse per line (`hubble observe -o jsonpb`, Hubble's exporter, flowscope's export files),
`-` for stdin; --since/--until and every filter of the request applied with the servers' own filter
code; `--first N` the first N matches, `--last N` the last N, no number all of them, in file order.
A line that is not a flow is reported on stderr with its line number and skipped."""

from __future__ import annotations

import collections
import sys
from typing import IO, Iterator, TextIO

from google.protobuf import json_format

from common import hubble_json
from common.errors import UserError
from common.filters import build_request_filter, in_range
from proto.observer import observer_pb2

ALL = 2**64 - 1
MAX_LAST = 1_000_000  # hubble's limit for --last over a file (it keeps them in memory)


def _open(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as err:
        raise UserError(f"--input-file {path}: {err.strerror} (expected a file of Hubble JSON flow lines, "
                        "or - for stdin)") from None


def read_responses(path: str, request: observer_pb2.GetFlowsRequest,
                   warnings: TextIO = sys.stderr) -> Iterator[observer_pb2.GetFlowsResponse]:
    """The responses of `path` that the request selects, in file order."""
    matches = build_request_filter(request.whitelist, request.blacklist)
    filtered = bool(request.whitelist or request.blacklist)
    since = request.since.ToNanoseconds() if request.HasField("since") else None
    until = request.until.ToNanoseconds() if request.HasField("until") else None
    mask = request.field_mask if request.field_mask.paths else None
    first = request.first and request.number not in (0, ALL)
    last = not request.first and request.number not in (0, ALL)
    if last and request.number > MAX_LAST:
        raise UserError(f"--last {request.number}: at most {MAX_LAST:,} flows from a file")
    stream = _open(path)

    def selected() -> Iterator[observer_pb2.GetFlowsResponse]:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                response = hubble_json.parse_line(line)
            except (json_format.ParseError, ValueError) as err:
                warnings.write(f"warning: {path}:{number}: not a Hubble flow line, skipped "
                               f"({str(err).splitlines()[0][:200]})\n")
                continue
            if not response.HasField("flow"):
                if not filtered and since is None and until is None:
                    yield response  # node status and lost events pass when nothing is asked of flows
                continue
            stamp = response.time if response.HasField("time") else response.flow.time
            if not in_range(stamp.ToNanoseconds(), since, until) or not matches(response.flow):
                continue
            if mask is not None:
                out = observer_pb2.GetFlowsResponse(node_name=response.node_name, time=response.time)
                mask.MergeMessage(response.flow, out.flow)
                response = out
            yield response

    try:
        if last:
            yield from collections.deque(selected(), maxlen=request.number)
        elif first:
            for count, response in enumerate(selected(), 1):
                yield response
                if count >= request.number:
                    break
        else:
            yield from selected()
    finally:
        if stream is not sys.stdin:
            stream.close()

