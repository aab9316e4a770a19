"""HTTP records shared by the HTTP/1 and HTTP/2 parsers: URL building, header redaction, summaries
in Hubble's words ("HTTP/1.1 GET http://backend:8080/users", "HTTP/1.1 200 5ms (GET http://...)")."""

from __future__ import annotations

from typing import Iterable

from proto.flow import flow_pb2

from .types import REDACTED, L7Config, L7Record


def build_url(config: L7Config, scheme: str, host: str, target: str) -> str:
    """Hubble-style URL from the request target; query and fragment dropped unless config allows."""
    if "://" in target:  # absolute-form (proxy requests) already carries scheme and host
        url = target
    else:
        url = f"{scheme}://{host}{target}"
    if not config.allow_url_query:
        cut = url.find("?")
        if cut >= 0:
            url = url[:cut]
    cut = url.find("#")
    return url[:cut] if cut >= 0 else url


def header_messages(config: L7Config, headers: Iterable[tuple[str, str]]) -> list[flow_pb2.HTTPHeader]:
    """Headers as Hubble shows them: names kept, values redacted unless the name is allowed."""
    if not config.include_headers:
        return []
    allow = config.header_allow
    out = []
    for name, value in headers:
        if len(out) >= config.max_headers:
            break
        if name[:1] == ":":  # HTTP/2 pseudo-headers already are method/url/code
            continue
        out.append(flow_pb2.HTTPHeader(key=name, value=value if name in allow else REDACTED))
    return out


def request_record(config: L7Config, protocol: str, method: str, url: str,
                   headers: Iterable[tuple[str, str]], partial: bool, parser: str) -> L7Record:
    http = flow_pb2.HTTP(method=method, url=url, protocol=protocol, headers=header_messages(config, headers))
    layer7 = flow_pb2.Layer7(type=flow_pb2.REQUEST, http=http)
    return L7Record(layer7, False, f"{protocol} {method} {url}", partial, parser)


def response_record(config: L7Config, protocol: str, code: int, method: str, url: str, latency_ns: int,
                    headers: Iterable[tuple[str, str]], partial: bool, parser: str) -> L7Record:
    http = flow_pb2.HTTP(code=code, method=method, url=url, protocol=protocol,
                         headers=header_messages(config, headers))
    layer7 = flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=max(latency_ns, 0), http=http)
    summary = f"{protocol} {code} {max(latency_ns, 0) // 1_000_000}ms ({method} {url})"
    return L7Record(layer7, True, summary, partial, parser)


def grpc_call(http: flow_pb2.HTTP) -> tuple[str, str] | None:
    """(service, method) of a gRPC call from an HTTP record's url (":path" /pkg.Service/Method), or None."""
    path = http.url.split("://", 1)[-1]
    slash = path.find("/")
    parts = path[slash + 1:].split("/") if slash >= 0 else []
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def grpc_status(http: flow_pb2.HTTP) -> int | None:
    """The grpc-status of a gRPC response record (the call's error signal: anything but 0 is an error),
    or None when the record carries none (not gRPC, or the call ended without trailers)."""
    for header in http.headers:
        if header.key == "grpc-status":
            try:
                return int(header.value)
            except ValueError:
                return None
    return None
