"""What an exporter does, from Hubble's flags (`--hubble-export-*`, here `--export-*`) or from Hubble's
dynamic exporter file:

    flowLogs:
    - name: shop-http
      filePath: /var/log/flowscope/shop-http.log     # or "stdout"
      fieldMask: [time, source.pod_name, destination.pod_name, l7.http, verdict]
      includeFilters: [{source_pod: ["shop/"], protocol: ["http"]}]
      excludeFilters: [{verdict: ["DROPPED"]}]
      fileMaxSizeMb: 10        # default 10
      fileMaxBackups: 5        # default 5
      fileCompress: true
      end: "2026-12-31T23:59:59Z"   # stop exporting after this time

Everything is validated here, once; a bad value raises ExportConfigError naming it.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from typing import Any

import yaml
from google.protobuf import field_mask_pb2, json_format

from common.errors import UserError
from common.filters import FilterError, build_request_filter
from common.timeparse import parse_time_ns
from proto.flow import flow_pb2

STDOUT = "stdout"
DEFAULT_MAX_SIZE_MB = 10  # Hubble's defaults
DEFAULT_MAX_BACKUPS = 5
STATIC_NAME = "static-exporter"  # what Hubble calls the exporter configured by flags
_KEYS = {"name", "filePath", "fieldMask", "includeFilters", "excludeFilters", "fileMaxSizeMb",
         "fileMaxBackups", "fileCompress", "end"}
_UNSUPPORTED = {"fieldAggregate", "aggregationInterval"}  # Hubble's flow aggregation: not implemented


class ExportConfigError(UserError):
    """A bad exporter flag or dynamic exporter file."""


@dataclass(frozen=True)
class ExportConfig:
    name: str
    file_path: str  # a path, or STDOUT
    max_size_mb: int = DEFAULT_MAX_SIZE_MB
    max_backups: int = DEFAULT_MAX_BACKUPS
    compress: bool = False
    allow: tuple[flow_pb2.FlowFilter, ...] = ()
    deny: tuple[flow_pb2.FlowFilter, ...] = ()
    field_mask: tuple[str, ...] = ()
    end_ns: int | None = None  # no flows are exported after this time

    def __post_init__(self) -> None:
        where = f"exporter {self.name!r}"
        if not self.name:
            raise ExportConfigError("exporter: a name is required")
        if not self.file_path:
            raise ExportConfigError(f"{where}: a file path (or 'stdout') is required")
        if self.max_size_mb <= 0:
            raise ExportConfigError(f"{where}: file max size {self.max_size_mb} MB: expected a positive number")
        if self.max_backups < 0:
            raise ExportConfigError(f"{where}: max backups {self.max_backups}: expected 0 or more")
        try:
            build_request_filter(self.allow, self.deny)
        except FilterError as err:
            raise ExportConfigError(f"{where}: {err}") from None
        field_mask(self.field_mask, where)

    @property
    def max_bytes(self) -> int:
        return self.max_size_mb * 1024 * 1024


def field_mask(paths: tuple[str, ...], where: str) -> field_mask_pb2.FieldMask | None:
    """The FieldMask over flow.Flow for these paths (None when empty); names the first unknown path."""
    if not paths:
        return None
    mask = field_mask_pb2.FieldMask(paths=list(paths))
    if not mask.IsValidForDescriptor(flow_pb2.Flow.DESCRIPTOR):
        bad = next(p for p in paths if not field_mask_pb2.FieldMask(paths=[p]).IsValidForDescriptor(
            flow_pb2.Flow.DESCRIPTOR))
        raise ExportConfigError(f"{where}: field mask path {bad!r} is not a field of flow.Flow "
                                "(expected e.g. source.pod_name, l7.http, verdict)")
    return mask


def parse_filter_list(text: str, flag: str) -> tuple[flow_pb2.FlowFilter, ...]:
    """Hubble's `--hubble-export-allowlist` value: JSON FlowFilters one after another, separated by
    whitespace (or commas), e.g. '{"source_pod":["shop/"]} {"verdict":["DROPPED"]}'."""
    decoder = json.JSONDecoder()
    filters = []
    i = 0
    while True:
        while i < len(text) and (text[i].isspace() or text[i] == ","):
            i += 1
        if i == len(text):
            return tuple(filters)
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise ExportConfigError(f"{flag} {text!r}: expected JSON flow filters such as "
                                    f'{{"source_pod":["shop/"]}} ({err.msg} at character {err.pos})') from None
        filters.append(_flow_filter(obj, flag))


def _flow_filter(obj: Any, where: str) -> flow_pb2.FlowFilter:
    if not isinstance(obj, dict):
        raise ExportConfigError(f"{where}: {obj!r}: expected a flow filter object such as "
                                '{"source_pod": ["shop/"]}')
    try:
        return json_format.ParseDict(obj, flow_pb2.FlowFilter())
    except json_format.ParseError as err:
        raise ExportConfigError(f"{where}: flow filter {json.dumps(obj, default=str)}: {err}") from None


def parse_dynamic(text: str, source: str) -> dict[str, ExportConfig]:
    """The exporters of a dynamic exporter file (`flowLogs:`), by name."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ExportConfigError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("flowLogs", []), list):
        raise ExportConfigError(f"{source}: expected a mapping with a 'flowLogs' list of exporters")
    configs: dict[str, ExportConfig] = {}
    paths: set[str] = set()
    for i, entry in enumerate(doc.get("flowLogs") or []):
        where = f"{source}: flowLogs[{i}]"
        config = _entry(entry, where)
        if config.name in configs:
            raise ExportConfigError(f"{where}: duplicated flow log name {config.name!r}")
        if config.file_path != STDOUT and config.file_path in paths:
            raise ExportConfigError(f"{where}: duplicated flow log path {config.file_path!r}")
        paths.add(config.file_path)
        configs[config.name] = config
    return configs


def _entry(entry: Any, where: str) -> ExportConfig:
    if not isinstance(entry, dict):
        raise ExportConfigError(f"{where}: expected a mapping with name and filePath")
    unknown = set(entry) - _KEYS - _UNSUPPORTED
    if unknown:
        raise ExportConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected {', '.join(sorted(_KEYS))})")
    if entry.get("fieldAggregate"):  # aggregationInterval only matters with it
        raise ExportConfigError(f"{where}: fieldAggregate (flow aggregation) is not supported by flowscope")
    name = entry.get("name") or ""
    if name:
        where = f"{where} ({name})"
    fields = dict(
        name=str(name), file_path=str(entry.get("filePath") or ""),
        max_size_mb=_int(entry, "fileMaxSizeMb", DEFAULT_MAX_SIZE_MB, where),
        max_backups=_int(entry, "fileMaxBackups", DEFAULT_MAX_BACKUPS, where),
        compress=bool(entry.get("fileCompress", False)),
        allow=tuple(_flow_filter(f, f"{where}: includeFilters") for f in _list(entry, "includeFilters", where)),
        deny=tuple(_flow_filter(f, f"{where}: excludeFilters") for f in _list(entry, "excludeFilters", where)),
        field_mask=tuple(str(p) for p in _list(entry, "fieldMask", where)),
        end_ns=_end(entry.get("end"), where))
    try:
        return ExportConfig(**fields)
    except ExportConfigError as err:
        raise ExportConfigError(f"{where}: {err}") from None


def _int(entry: dict, key: str, default: int, where: str) -> int:
    value = entry.get(key)
    if value in (None, 0):  # Hubble: 0 means the default
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExportConfigError(f"{where}: {key} {value!r}: expected a whole number")
    return value


def _list(entry: dict, key: str, where: str) -> list:
    value = entry.get(key) or []
    if not isinstance(value, list):
        raise ExportConfigError(f"{where}: {key} {value!r}: expected a list")
    return value


def _end(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):  # YAML reads unquoted timestamps itself
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1_000_000_000)
    try:
        return parse_time_ns(f"{where}: end", str(value), time.time_ns())
    except UserError as err:
        raise ExportConfigError(str(err)) from None
