"""What the TLS capture needs from this kernel, and the one line it says when something is missing."""

from __future__ import annotations

import pytest

from collector.btf import load_btf
from collector.tls import TlsCaptureError
from collector.tls.loader import TlsProgram, program_cflags, tracepoint_offsets, uprobes_available


def test_struct_sock_offsets_come_from_this_kernels_btf():
    flags = dict(f[2:].split("=") for f in program_cflags(load_btf(), tracepoint={"sk": 8, "family": 16,
                                                                                "protocol": 18}))
    # sock_common starts with the address pair (daddr, rcv_saddr): true of every kernel since 2.6
    assert (flags["SKC_DADDR"], flags["SKC_RCV_SADDR"]) == ("0", "4")
    assert int(flags["SKC_FAMILY"]) > 4 and int(flags["SKC_V6_DADDR"]) > int(flags["SKC_FAMILY"])
    assert (flags["TP_SK"], flags["TP_FAMILY"], flags["TP_PROTOCOL"]) == ("8", "16", "18")
    assert flags["PAYLOAD_BYTES"] == "512"


@pytest.mark.root  # tracefs is root's
def test_the_sock_length_tracepoints_are_read_from_tracefs():
    assert set(tracepoint_offsets()) == {"sk", "family", "protocol"}


def test_no_uprobes_is_one_line_saying_so(tmp_path):
    reason = uprobes_available(str(tmp_path / "uprobe"))
    assert reason == "the kernel has no uprobe PMU (CONFIG_UPROBES / CONFIG_UPROBE_EVENTS off)"
    with pytest.raises(TlsCaptureError) as err:
        TlsProgram(uprobe_pmu=str(tmp_path / "uprobe")).load()
    assert str(err.value) == f"TLS capture off: {reason}"
    assert "\n" not in str(err.value)
