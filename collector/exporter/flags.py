"""The `--export-*` flags of `flowscope collector`, `flowscope relay` and `flowscope up` (Hubble's
`--hubble-export-*` and `--hubble-flowlogs-config-path`, without the prefix)."""

from __future__ import annotations

import argparse

from collector.exporter.config import (DEFAULT_MAX_BACKUPS, DEFAULT_MAX_SIZE_MB, STATIC_NAME, ExportConfig,
                                       ExportConfigError, parse_filter_list)
from collector.exporter.dynamic import DynamicExporters
from collector.exporter.exporter import FlowExporter
from collector.exporter.hook import Exporters
from collector.exporter.metrics import ExportMetrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("flow export to files (Hubble's exporter; lines as `hubble observe -o json`)")
    group.add_argument("--export-file-path", metavar="PATH",
                       help="write every flow to this file ('stdout' = standard output)")
    group.add_argument("--export-file-max-size-mb", type=int, default=DEFAULT_MAX_SIZE_MB, metavar="MB",
                       help=f"rotate the file at this size (default {DEFAULT_MAX_SIZE_MB})")
    group.add_argument("--export-file-max-backups", type=int, default=DEFAULT_MAX_BACKUPS, metavar="N",
                       help=f"rotated files to keep (default {DEFAULT_MAX_BACKUPS})")
    group.add_argument("--export-file-compress", action="store_true", help="gzip rotated files")
    group.add_argument("--export-allowlist", default="", metavar="JSON",
                       help='export only flows matching one of these JSON FlowFilters, e.g. '
                            '\'{"source_pod":["shop/"]} {"protocol":["dns"]}\'')
    group.add_argument("--export-denylist", default="", metavar="JSON",
                       help="leave out flows matching one of these JSON FlowFilters")
    group.add_argument("--export-fieldmask", default="", metavar="PATHS",
                       help="keep only these flow fields, comma- or space-separated "
                            "(e.g. time,source.pod_name,destination.pod_name,verdict)")
    group.add_argument("--export-config", metavar="PATH",
                       help="Hubble's dynamic exporter file (flowLogs: name, filePath, fieldMask, "
                            "includeFilters, excludeFilters, fileMaxSizeMb, fileMaxBackups, fileCompress, "
                            "end): several exporters, re-read when it changes")


def static_config(args: argparse.Namespace) -> ExportConfig | None:
    """The exporter the flags describe (None without --export-file-path)."""
    if not args.export_file_path:
        if args.export_allowlist or args.export_denylist or args.export_fieldmask:
            raise ExportConfigError("--export-allowlist/--export-denylist/--export-fieldmask need "
                                    "--export-file-path (a file, or 'stdout')")
        return None
    try:
        return ExportConfig(
            name=STATIC_NAME, file_path=args.export_file_path, max_size_mb=args.export_file_max_size_mb,
            max_backups=args.export_file_max_backups, compress=args.export_file_compress,
            allow=parse_filter_list(args.export_allowlist, "--export-allowlist"),
            deny=parse_filter_list(args.export_denylist, "--export-denylist"),
            field_mask=tuple(p for p in args.export_fieldmask.replace(",", " ").split()))
    except ExportConfigError as err:
        if str(err).startswith("--"):
            raise
        raise ExportConfigError(f"--export-* flags: {err}") from None


def start_exporters(args: argparse.Namespace) -> Exporters | None:
    """The exporters of the flags, running; None when no export is asked for."""
    config = static_config(args)
    if config is None and not args.export_config:
        return None
    dynamic = DynamicExporters(args.export_config) if args.export_config else None
    try:
        static = [FlowExporter(config)] if config is not None else []
    except OSError as err:
        if dynamic is not None:
            dynamic.stop()
        raise ExportConfigError(f"--export-file-path {config.file_path}: cannot open: {err.strerror}") from None
    return Exporters(static, dynamic)


def register_metrics(exporters: Exporters, registry) -> None:
    """The exporters' counters on a process's metrics registry (none when it serves no metrics)."""
    if registry is not None:
        ExportMetrics(lambda: exporters.all).register(registry)
