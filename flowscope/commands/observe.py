"""`flowscope observe`: flows from a collector (:4244) or the relay (:4245), like `hubble observe`.

Filter flags follow hubble: --from-X/--to-X set the source/destination side; a bidirectional flag
(--ip, --pod, --namespace, --label, --port, --fqdn, --service, --workload, --identity) makes two
whitelist filters, one per side; other flags apply to both. `--not` negates the flag after it and
sends it to the blacklist instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import grpc

from common.filters import FilterError, build_filter
from common.tls import add_client_arguments, client_tls_from_args, connect
from common.errors import UserError
from flowscope import hubble_config
from flowscope import timeformat
from flowscope.input_file import read_responses
from flowscope.printer import OUTPUTS, Printer, Style
from common.timeparse import parse_time_ns
from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc

DEFAULT_SERVER = "localhost:4245"
DEFAULT_LAST = 20  # what `hubble observe` asks for without --last/--first/--all/--follow/--since
ALL = 2**64 - 1

EVENT_TYPES = {"drop": 1, "debug": 2, "capture": 3, "trace": 4, "policy-verdict": 5, "trace-sock": 7,
               "l7": 129, "agent": 130}
TRACE_SUBTYPES = {"to-endpoint": 0, "to-proxy": 1, "to-host": 2, "to-stack": 3, "to-overlay": 4,
                  "from-endpoint": 5, "from-proxy": 6, "from-host": 7, "from-stack": 8, "from-overlay": 9,
                  "from-network": 10, "to-network": 11}


@dataclass
class FilterFlag:
    """One filter flag as given, in command-line order (order matters for --not)."""
    flag: str
    value: str
    negate: bool


@dataclass
class Sides:
    """hubble's filter tracker: `left` and `right` start equal and split on bidirectional flags."""
    left: flow_pb2.FlowFilter | None = None
    right: flow_pb2.FlowFilter | None = None

    def apply(self, update: Callable[[flow_pb2.FlowFilter], None], side: str = "both") -> None:
        if side in ("both", "left"):
            self.left = self.left or flow_pb2.FlowFilter()
            update(self.left)
        if side in ("both", "right"):
            self.right = self.right or flow_pb2.FlowFilter()
            update(self.right)

    def filters(self) -> list[flow_pb2.FlowFilter]:
        present = [f for f in (self.left, self.right) if f is not None]
        if len(present) == 2 and present[0] == present[1]:
            return present[:1]
        return present


# --- flag value parsers: (flag, value) -> what goes into the FlowFilter field --------------------------

def _enum(enum):
    def parse(flag: str, value: str) -> int:
        name = value.strip().upper()
        if name not in enum.keys():
            raise UserError(f"{flag} {value!r}: expected one of {', '.join(enum.keys()).lower()}")
        return enum.Value(name)
    return parse


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit() is True, int("²") fails


def _event_type(flag: str, value: str) -> flow_pb2.EventTypeFilter:
    name, _, sub = value.strip().lower().partition(":")
    if name not in EVENT_TYPES:
        raise UserError(f"{flag} {value!r}: expected one of {', '.join(EVENT_TYPES)} "
                        "(optionally with a sub type, e.g. trace:to-endpoint)")
    et = flow_pb2.EventTypeFilter(type=EVENT_TYPES[name])
    if sub:
        if name == "trace" and sub in TRACE_SUBTYPES:
            et.sub_type = TRACE_SUBTYPES[sub]
        elif _is_number(sub) and int(sub) < 2**31:
            et.sub_type = int(sub)
        else:
            raise UserError(f"{flag} {value!r}: unknown sub type {sub!r} (trace sub types: "
                            f"{', '.join(TRACE_SUBTYPES)}; others take a number)")
        et.match_sub_type = True
    return et


def _tcp_flags(flag: str, value: str) -> flow_pb2.TCPFlags:
    flags = flow_pb2.TCPFlags()
    names = [n.strip().upper() for n in value.split(",") if n.strip()]
    valid = [f.name for f in flow_pb2.TCPFlags.DESCRIPTOR.fields]
    if not names or any(n not in valid for n in names):
        raise UserError(f"{flag} {value!r}: expected comma-separated flags from {', '.join(valid)}")
    for n in names:
        setattr(flags, n, True)
    return flags


def _workload(flag: str, value: str) -> flow_pb2.Workload:
    """"name" or "kind/name" (e.g. Deployment/frontend)."""
    kind, sep, name = value.partition("/")
    return flow_pb2.Workload(kind=kind, name=name) if sep else flow_pb2.Workload(name=value)


def _identity(flag: str, value: str) -> int:
    if not _is_number(value) or int(value) >= 2**32:
        raise UserError(f"{flag} {value!r}: expected a numeric identity")
    return int(value)


def _text(flag: str, value: str) -> str:
    return value


def _http_header(flag: str, value: str) -> flow_pb2.HTTPHeader:
    """hubble's --http-header name:value (split at the first colon)."""
    key, sep, header_value = value.partition(":")
    if not sep or not key:
        raise UserError(f"{flag} {value!r}: expected name:value, e.g. content-type:application/json")
    return flow_pb2.HTTPHeader(key=key, value=header_value)


# name -> (source field, destination field, value parser): --X is both sides, --from-X / --to-X one.
_SIDED = {
    "ip": ("source_ip", "destination_ip", _text),
    "pod": ("source_pod", "destination_pod", _text),
    "label": ("source_label", "destination_label", _text),
    "port": ("source_port", "destination_port", _text),
    "fqdn": ("source_fqdn", "destination_fqdn", _text),
    "service": ("source_service", "destination_service", _text),
    "workload": ("source_workload", "destination_workload", _workload),
    "identity": ("source_identity", "destination_identity", _identity),
    "namespace": ("source_pod", "destination_pod", lambda flag, value: f"{value}/"),
}
# name -> (field, value parser): applies to every filter.
_GLOBAL = {
    "protocol": ("protocol", _text),
    "verdict": ("verdict", _enum(flow_pb2.Verdict)),
    "type": ("event_type", _event_type),
    "tcp-flags": ("tcp_flags", _tcp_flags),
    "node-name": ("node_name", _text),
    "http-status": ("http_status_code", _text),
    "http-method": ("http_method", _text),
    "http-path": ("http_path", _text),
    "http-url": ("http_url", _text),
    "http-header": ("http_header", _http_header),
    "node-label": ("node_labels", _text),
    "dns-query": ("dns_query", _text),
    "traffic-direction": ("traffic_direction", _enum(flow_pb2.TrafficDirection)),
    "drop-reason-desc": ("drop_reason_desc", _enum(flow_pb2.DropReason)),
    "uuid": ("uuid", _text),
    "ipv4": ("ip_version", lambda flag, value: flow_pb2.IPv4),
    "ipv6": ("ip_version", lambda flag, value: flow_pb2.IPv6),
    "is-reply": ("reply", lambda flag, value: True),
}
_NO_VALUE = {"ipv4": ["-4"], "ipv6": ["-6"], "is-reply": []}


def _checked(flag: str, field_name: str, value) -> object:
    """Validates one value with the same code the server uses, reporting it by flag."""
    try:
        build_filter(flow_pb2.FlowFilter(**{field_name: [value]}))
    except FilterError as err:
        raise UserError(f"{flag} {err.value!r}: {err.reason} ({err.field} filter)") from None
    return value


def _apply(flag: FilterFlag, sides: Sides, namespace: str) -> None:
    name = flag.flag.lstrip("-")
    if name in _GLOBAL:
        field_name, parse = _GLOBAL[name]
        value = _checked(flag.flag, field_name, parse(flag.flag, flag.value))
        sides.apply(lambda f: getattr(f, field_name).append(value))
        return
    direction, _, base = name.partition("-") if name.startswith(("from-", "to-")) else ("", "", name)
    src_field, dst_field, parse = _SIDED[base]
    raw = flag.value if base != "pod" or "/" in flag.value else f"{namespace}/{flag.value}"
    value = _checked(flag.flag, src_field, parse(flag.flag, raw))
    if direction:
        field_name = src_field if direction == "from" else dst_field
        sides.apply(lambda f: getattr(f, field_name).append(value))
    else:
        sides.apply(lambda f: getattr(f, src_field).append(value), "left")
        sides.apply(lambda f: getattr(f, dst_field).append(value), "right")


def build_filters(flags: list[FilterFlag], namespace: str | None) -> tuple[list, list]:
    """(whitelist, blacklist) as hubble builds them from the flags in command-line order."""
    allow, deny = Sides(), Sides()
    pods_given = any(f.flag.lstrip("-") in ("pod", "from-pod", "to-pod") for f in flags)
    ordered = list(flags)
    if namespace and not pods_given:
        ordered.insert(0, FilterFlag("--namespace", namespace, False))
    for flag in ordered:
        _apply(flag, deny if flag.negate else allow, namespace or "default")
    return allow.filters(), deny.filters()


def build_request(args: argparse.Namespace, now_ns: int) -> observer_pb2.GetFlowsRequest:
    request = observer_pb2.GetFlowsRequest(follow=args.follow)
    whitelist, blacklist = build_filters(args.filters or [], args.namespace)
    request.whitelist.extend(whitelist)
    request.blacklist.extend(blacklist)
    if args.since:
        request.since.FromNanoseconds(parse_time_ns("--since", args.since, now_ns))
    if args.until:
        request.until.FromNanoseconds(parse_time_ns("--until", args.until, now_ns))
    if sum(x is not None and x is not False for x in (args.last, args.first, args.all or None)) > 1:
        raise UserError("--last, --first and --all exclude each other")
    if args.first is not None and args.follow:
        raise UserError("--first cannot be combined with --follow")
    if args.all:
        request.number = ALL
    elif args.last is not None:
        request.number = args.last
    elif args.first is not None:
        request.number, request.first = args.first, True
    elif not args.follow and not args.since and not args.until and not args.input_file:
        request.number = DEFAULT_LAST  # hubble: a file is read whole unless --last/--first say otherwise
    if args.field_mask:
        paths = [p.strip() for value in args.field_mask for p in value.split(",") if p.strip()]
        request.field_mask.paths.extend(paths)
        if not request.field_mask.IsValidForDescriptor(flow_pb2.Flow.DESCRIPTOR):
            raise UserError(f"--field-mask {','.join(paths)}: names fields flow.Flow does not have "
                            "(expected paths such as time,verdict,source.pod_name,l4)")
        if args.output not in ("json", "jsonpb"):
            raise UserError(f"--field-mask: the {args.output} output needs fields the mask may leave out; "
                            "use -o json")
    return request


# --- argparse --------------------------------------------------------------------------------------

class _FilterAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        negate = getattr(namespace, "negate_next", False)
        namespace.negate_next = False
        namespace.filters = (namespace.filters or []) + [
            FilterFlag(self.option_strings[-1], values if isinstance(values, str) else "", negate)]


class _NotAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        namespace.negate_next = True


def _count(value: str) -> int:
    if not _is_number(value):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(filters=None, negate_next=False)
    conn = parser.add_argument_group("server")
    conn.add_argument("--server", default=DEFAULT_SERVER,
                      help="host:port, tls://host:port or unix:///path (default %(default)s)")
    conn.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the server to answer")
    add_client_arguments(conn)
    sel = parser.add_argument_group("selection")
    sel.add_argument("--last", type=_count, metavar="N", help=f"last N flows (default {DEFAULT_LAST})")
    sel.add_argument("--first", type=_count, metavar="N", help="first N flows")
    sel.add_argument("--all", action="store_true", help="all flows the server holds")
    sel.add_argument("-f", "--follow", action="store_true", help="follow new flows")
    sel.add_argument("--since", metavar="TIME", help="flows since TIME: 5m, 1h ago or RFC 3339")
    sel.add_argument("--until", metavar="TIME", help="flows until TIME: 5m, 1h ago or RFC 3339")
    filt = parser.add_argument_group("filters")
    filt.add_argument("--not", action=_NotAction, nargs=0, help="negate the next filter (blacklist)")
    filt.add_argument("-n", "--namespace", help="flows from or to this namespace; default namespace of --pod")
    for base in _SIDED:
        flags = [f"--from-{base}", f"--to-{base}"] if base == "namespace" else [
            f"--{base}", f"--from-{base}", f"--to-{base}"]
        for flag in flags:
            filt.add_argument(flag, action=_FilterAction, metavar="VALUE")
    for name in _GLOBAL:
        if name in _NO_VALUE:
            filt.add_argument(*_NO_VALUE[name], f"--{name}", action=_FilterAction, nargs=0)
        else:
            filt.add_argument(f"--{name}", action=_FilterAction, metavar="VALUE")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", choices=OUTPUTS, default="compact")
    out.add_argument("--print-node-name", action="store_true", help="show the node of each flow")
    out.add_argument("--time-format", default="StampMilli", metavar="FORMAT",
                     help=f"time format of compact, dict and table: {', '.join(timeformat.FORMATS)} "
                          "(default %(default)s)")
    out.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                     help="colours in compact and dict output: auto (on a terminal, unless NO_COLOR is "
                          "set or TERM=dumb), always, never")
    out.add_argument("--field-mask", action="append", metavar="PATHS",
                     help="comma-separated flow fields to keep (e.g. time,verdict,source.pod_name); json only")
    other = parser.add_argument_group("input")
    other.add_argument("--input-file", metavar="FILE",
                       help="read flows from a file of Hubble JSON lines (hubble observe -o json, exports) "
                            "instead of a server; - for stdin. Filters, --since/--until, --first/--last apply")
    out.add_argument("--flowscope-fields", action="store_true",
                     help="json: also print flowscope's own flow fields (counters, l7_partial, "
                          "kernel_drop_reason), which Hubble's readers do not know")

    hubble_config.add_config_argument(parser)  # --server, --timeout, --tls*: also HUBBLE_* and config.yaml

# --- run -------------------------------------------------------------------------------------------

def _connect(args: argparse.Namespace) -> grpc.Channel:
    address, tls = client_tls_from_args(args, args.server)
    return connect(address, tls, args.timeout)


def run(args: argparse.Namespace) -> int:
    hubble_config.resolve(args)
    if args.negate_next:
        raise UserError("--not must be followed by a filter flag")
    request = build_request(args, time.time_ns())
    style = Style(timeformat.format_name(args.time_format), use_color(args.color, sys.stdout))
    printer = Printer(args.output, sys.stdout, sys.stderr, node_name=args.print_node_name,
                      flowscope_fields=args.flowscope_fields, style=style)
    if args.input_file:
        return _print_all(read_responses(args.input_file, request), printer)
    ch = _connect(args)
    call = observer_pb2_grpc.ObserverStub(ch).GetFlows(request)
    try:
        for response in call:
            printer.write(response)
            if args.follow:  # line by line, also into a pipe (`... -f | grep`)
                printer.flush()
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise UserError(f"{args.server} rejected the request: {err.details()}") from None
        if err.code() != grpc.StatusCode.CANCELLED:
            raise UserError(f"{args.server}: {err.code().name.lower()}: {err.details()}") from None
    except BrokenPipeError:
        return 0  # the reader (e.g. `| head`) went away
    except KeyboardInterrupt:
        call.cancel()
    finally:
        ch.close()
    try:
        printer.close()
    except BrokenPipeError:
        pass
    return 0


def use_color(when: str, out, env=os.environ) -> bool:
    """hubble's --color auto: colours on a terminal unless NO_COLOR is set or TERM is dumb."""
    if when != "auto":
        return when == "always"
    return out.isatty() and "NO_COLOR" not in env and env.get("TERM") != "dumb"


def _print_all(responses, printer: Printer) -> int:
    try:
        for response in responses:
            printer.write(response)
        printer.close()
    except BrokenPipeError:
        pass  # the reader (e.g. `| head`) went away
    return 0
