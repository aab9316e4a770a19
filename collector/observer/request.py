"""GetFlowsRequest -> FlowQuery: validated once, so bad requests become INVALID_ARGUMENT with a
message that says what is wrong, before any flow is read."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import field_mask_pb2, timestamp_pb2

from common.filters import FlowPredicate, build_request_filter
from common.errors import UserError
from proto.flow import flow_pb2
from proto.observer import observer_pb2

ALL = 2**64 - 1  # what `hubble observe --all` sends
MAX_NUMBER = 10_000_000  # beyond this (and not ALL) a number is a client bug, not a wish
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31, as protobuf


class RequestError(UserError):
    """A request the server cannot answer as asked; sent back as INVALID_ARGUMENT."""


@dataclass(frozen=True)
class FlowQuery:
    number: int  # 0: no limit
    first: bool
    follow: bool
    since_ns: int | None
    until_ns: int | None
    match: FlowPredicate
    field_mask: field_mask_pb2.FieldMask | None = None
    filtered: bool = True  # False: no whitelist/blacklist, `match` accepts every flow


def timestamp_ns(name: str, stamp: timestamp_pb2.Timestamp) -> int:
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS or not 0 <= stamp.nanos < 1_000_000_000:
        raise RequestError(f"{name} is not a valid timestamp (seconds={stamp.seconds}, nanos={stamp.nanos})")
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def time_bounds(request) -> tuple[int | None, int | None]:
    """since/until of any request with those fields (flows, agent events, debug events)."""
    since = timestamp_ns("since", request.since) if request.HasField("since") else None
    until = timestamp_ns("until", request.until) if request.HasField("until") else None
    if since is not None and until is not None and since > until:
        raise RequestError(f"since ({request.since.ToJsonString()}) is after until "
                           f"({request.until.ToJsonString()})")
    return since, until


def _field_mask(request: observer_pb2.GetFlowsRequest) -> field_mask_pb2.FieldMask | None:
    mask = request.field_mask if request.field_mask.paths else request.experimental.field_mask
    if not mask.paths:
        return None
    if not mask.IsValidForDescriptor(flow_pb2.Flow.DESCRIPTOR):
        raise RequestError(f"field_mask {', '.join(mask.paths)} names fields that flow.Flow does not have")
    return mask


def parse_request(request: observer_pb2.GetFlowsRequest) -> FlowQuery:
    """Raises RequestError or common.filters.FilterError (both UserError)."""
    since, until = time_bounds(request)
    number = request.number
    if number == ALL:
        number = 0
    elif number > MAX_NUMBER:
        raise RequestError(f"number {number} is too large: at most {MAX_NUMBER} "
                           "(use --all for everything, or since/until)")
    if request.first and request.follow:
        raise RequestError("first and follow cannot be combined")
    match = build_request_filter(request.whitelist, request.blacklist)
    return FlowQuery(number=number, first=request.first, follow=request.follow, since_ns=since,
                     until_ns=until, match=match, field_mask=_field_mask(request),
                     filtered=bool(request.whitelist or request.blacklist))
