"""Runs bpf/policy.h's policy_check() in the kernel on given arguments (BPF_PROG_TEST_RUN), so the
datapath half of the enforcer is tested against the maps the Python half writes."""

from __future__ import annotations

import ctypes
import ipaddress
import pathlib
from dataclasses import dataclass

from enforcer.datapath import PolicyMaps
from enforcer.datapath.bpf import lib

REPO = pathlib.Path(__file__).resolve().parents[2]


class _TestRunOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


@dataclass(frozen=True)
class Verdict:
    action: int
    match_type: int
    audit: int
    policy_id: int
    remote_identity: int


class KernelProbe:
    def __init__(self, maps: PolicyMaps) -> None:
        from bcc import BPF  # Debian's python3-bpfcc
        self.bpf = BPF(src_file=str(REPO / "tests/enforcer/policy_probe.c"),
                       cflags=[f"-I{REPO / 'bpf'}", *maps.cflags()])
        self.fn = self.bpf.load_func("probe", BPF.SCHED_CLS)

    def check(self, ifindex: int, direction: int, peer: str, proto: int, dport: int) -> Verdict:
        ip = ipaddress.ip_address(peer)
        table = self.bpf[b"probe_in"]
        value = table.Leaf()
        value.ifindex, value.direction, value.proto, value.dport = ifindex, direction, proto, dport
        value.family = 2 if ip.version == 4 else 10
        value.addr[:len(ip.packed)] = list(ip.packed)
        table[ctypes.c_int(0)] = value
        packet = (ctypes.c_uint8 * 64)()
        opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(packet), data_size_in=64,
                            repeat=1)
        fn = lib().bpf_prog_test_run_opts
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
        if fn(self.fn.fd, ctypes.byref(opts)) != 0:
            raise OSError(ctypes.get_errno(), "BPF_PROG_TEST_RUN failed")
        out = self.bpf[b"probe_out"][ctypes.c_int(0)]
        return Verdict(out.action, out.match_type, out.audit, out.policy_id, out.remote_identity)
