"""The policy maps of bpf/policy.h, their C layouts as ctypes Structures, and their lifecycle:
created and pinned once in the collector's pin dir, reopened by every later collector or
`flowscope policy apply`, handed to the BPF compiler as file descriptors (see bpf/policy.h for why)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from enforcer.datapath.ports import RULE_ALLOW, RULE_DENY  # noqa: F401 (re-exported)
from enforcer.datapath.bpf import BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE, BpfMap

DEFAULT_PIN_DIR = "/sys/fs/bpf/flowscope"
PIN_DIR_ENV = "FLOWSCOPE_PIN_DIR"

DIR_INGRESS = 1
DIR_EGRESS = 2
EP_ENFORCE_INGRESS = 0x1
EP_ENFORCE_EGRESS = 0x2
EP_AUDIT = 0x4
FAMILY_V4 = 4
FAMILY_V6 = 6
RULE_FIXED_BITS = 80
IPCACHE_FIXED_BITS = 32
IDENTITY_ANY = 0

ENDPOINTS_MAX = 4096
IPCACHE_MAX = 65536
RULES_MAX = 262144


class EndpointValue(ctypes.Structure):
    _fields_ = [("identity", ctypes.c_uint32), ("flags", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3),
                ("ingress_policy_id", ctypes.c_uint32), ("egress_policy_id", ctypes.c_uint32)]


class IpcacheKey(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("family", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3),
                ("addr", ctypes.c_uint8 * 16)]


class IpcacheValue(ctypes.Structure):
    _fields_ = [("identity", ctypes.c_uint32)]


class RuleKey(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("ep_identity", ctypes.c_uint32),
                ("peer_identity", ctypes.c_uint32), ("direction", ctypes.c_uint8),
                ("proto", ctypes.c_uint8), ("dport_be", ctypes.c_uint16)]


class RuleValue(ctypes.Structure):
    _fields_ = [("action", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3), ("policy_id", ctypes.c_uint32)]


def default_pin_dir() -> str:
    return os.environ.get(PIN_DIR_ENV, DEFAULT_PIN_DIR)


@dataclass
class PolicyMaps:
    """The three maps of bpf/policy.h, open in this process."""

    endpoints: BpfMap
    ipcache: BpfMap
    rules: BpfMap
    pin_dir: str | None

    @classmethod
    def open(cls, pin_dir: str | None = None) -> "PolicyMaps":
        """Open the pinned maps in `pin_dir`, creating and pinning the missing ones.
        `pin_dir=None` makes private unpinned maps (tests, benchmarks)."""
        def path(name: str) -> str | None:
            return os.path.join(pin_dir, name) if pin_dir else None
        return cls(
            endpoints=BpfMap.create_or_open("policy_endpoints", BPF_MAP_TYPE_HASH, ctypes.c_uint32,
                                            EndpointValue, ENDPOINTS_MAX, 0, path("policy_endpoints")),
            ipcache=BpfMap.create_or_open("policy_ipcache", BPF_MAP_TYPE_LPM_TRIE, IpcacheKey, IpcacheValue,
                                          IPCACHE_MAX, BPF_F_NO_PREALLOC, path("policy_ipcache")),
            rules=BpfMap.create_or_open("policy_rules", BPF_MAP_TYPE_LPM_TRIE, RuleKey, RuleValue,
                                        RULES_MAX, BPF_F_NO_PREALLOC, path("policy_rules")),
            pin_dir=pin_dir,
        )

    def cflags(self) -> list[str]:
        """The compiler flags that compile bpf/policy.h against these maps. The fds must stay open
        until the program is loaded (keep this object alive)."""
        return [f"-DPOLICY_ENDPOINTS_FD={self.endpoints.fd}", f"-DPOLICY_IPCACHE_FD={self.ipcache.fd}",
                f"-DPOLICY_RULES_FD={self.rules.fd}"]

    def close(self) -> None:
        for m in (self.endpoints, self.ipcache, self.rules):
            m.close()
