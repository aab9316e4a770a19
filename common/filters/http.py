"""HTTP filters on L7 HTTP flows: status code ("404", or "4+" for a class), method, path and URL
regular expressions (RE2, searched, not anchored, like Go's MatchString in Hubble)."""

from __future__ import annotations

import re
import urllib.parse

from common.filters.base import FilterError, FlowPredicate, regex_matcher
from proto.flow import flow_pb2

_STATUS = re.compile(r"([1-5])(\d\d|\+)")
_METHOD = re.compile(r"[A-Za-z]+")


def parse_status(value: str) -> tuple[int, int]:
    """Inclusive code range: "404" -> (404, 404), "5+" -> (500, 599)."""
    m = _STATUS.fullmatch(value.strip())
    if not m:
        raise FilterError("http_status_code", value, 'expected a status code 100-599 or a class like "5+"')
    if m[2] == "+":
        low = int(m[1]) * 100
        return low, low + 99
    code = int(m[0])
    return code, code


def parse_methods(values) -> list[str]:
    """HTTP methods, upper-cased: "get" -> "GET"."""
    for value in values:
        if not _METHOD.fullmatch(value):
            raise FilterError("http_method", value, "expected an HTTP method such as GET")
    return [value.upper() for value in values]


def _http(flow: flow_pb2.Flow) -> flow_pb2.HTTP | None:
    if flow.HasField("l7") and flow.l7.WhichOneof("record") == "http":
        return flow.l7.http
    return None


def _path(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).path
    except ValueError:
        return ""


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.http_status_code:
        ranges = [parse_status(v) for v in ff.http_status_code]

        def status_match(flow: flow_pb2.Flow) -> bool:
            http = _http(flow)
            # Requests carry no code yet; only responses (code != 0) can match a status filter.
            return http is not None and http.code != 0 and any(lo <= http.code <= hi for lo, hi in ranges)

        preds.append(status_match)
    if ff.http_method:
        methods = set(parse_methods(ff.http_method))
        preds.append(lambda f: (h := _http(f)) is not None and h.method.upper() in methods)
    if ff.http_path:
        path_match = regex_matcher("http_path", ff.http_path)
        preds.append(lambda f: (h := _http(f)) is not None and path_match(_path(h.url)))
    if ff.http_url:
        url_match = regex_matcher("http_url", ff.http_url)
        preds.append(lambda f: (h := _http(f)) is not None and url_match(h.url))
    if ff.http_header:
        wanted = set()
        for header in ff.http_header:
            if not header.key:
                raise FilterError("http_header", f"{header.key}:{header.value}", "expected name:value")
            wanted.add((header.key, header.value))
        # As Hubble: some header of the flow equals (key and value, exactly) a wanted one.
        preds.append(lambda f: (h := _http(f)) is not None and any((x.key, x.value) in wanted for x in h.headers))
    return preds
