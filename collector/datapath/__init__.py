"""The eBPF datapath (bpf/flowscope.c): load, attach to pod devices, decode events into flow.Flow."""

from collector.datapath.datapath import Datapath, DatapathStats
from collector.datapath.decoder import DecodeError, Decoder
from collector.datapath.enrich import Enricher
from collector.datapath.loader import (DEFAULT_PIN_DIR, DatapathConfig, DatapathError, KernelHeadersMissing,
                                       PermissionDenied, program_text)

__all__ = [
    "DEFAULT_PIN_DIR", "Datapath", "DatapathConfig", "DatapathError", "DatapathStats", "DecodeError",
    "Decoder", "Enricher", "KernelHeadersMissing", "PermissionDenied", "program_text",
]
