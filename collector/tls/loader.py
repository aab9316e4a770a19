"""Compile bpf/tls_uprobes.c with this kernel's struct sock offsets and attach it to libssl files.

Uprobes belong to a file (inode and offset), not to a process: one attachment per distinct libssl
covers every process that maps it, those started later included."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from collector.btf import Btf, load_btf
from collector.tracefs import TracepointError, record_offsets
from common.errors import UserError

BPF_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "bpf", "tls_uprobes.c")
# (symbol, entry program, return program or ""): OpenSSL 3's plaintext calls (SSL_write and SSL_write_ex,
# and the reads, do not call each other, so no call is seen twice) and SSL_free, which ends a connection.
PROBES = (
    ("SSL_write", "enter_write", "leave_call"),
    ("SSL_write_ex", "enter_write_ex", "leave_call_ex"),
    ("SSL_read", "enter_read", "leave_call"),
    ("SSL_read_ex", "enter_read_ex", "leave_call_ex"),
    ("SSL_free", "enter_free", ""),
)
TRACEPOINTS = (("sock", "sock_send_length", "on_sock_send"), ("sock", "sock_recv_length", "on_sock_recv"))
_SOCK_FIELDS = {
    "SKC_FAMILY": "skc_family", "SKC_DADDR": "skc_daddr", "SKC_RCV_SADDR": "skc_rcv_saddr",
    "SKC_DPORT": "skc_dport", "SKC_NUM": "skc_num", "SKC_V6_DADDR": "skc_v6_daddr",
    "SKC_V6_RCV_SADDR": "skc_v6_rcv_saddr", "SKC_NET": "skc_net",
}


class TlsCaptureError(UserError):
    """The TLS capture cannot run here (no uprobes, no tracepoint, no BTF, no bcc)."""


@dataclass(frozen=True)
class TlsProgramConfig:
    payload_bytes: int = 512      # as the TC datapath's prefix capture
    stream_segment_bytes: int = 16384
    l7_budget: int = 1 << 20


def program_cflags(btf: Btf, config: TlsProgramConfig = TlsProgramConfig(),
                   tracepoint: dict[str, int] | None = None) -> list[str]:
    """-D constants for bpf/tls_uprobes.c: struct sock_common offsets of THIS kernel, the
    sock_*_length record layout and the capture limits."""
    flags = [f"-D{macro}={btf.offset('sock_common', name)}" for macro, name in _SOCK_FIELDS.items()]
    flags.append(f"-DNET_INUM={btf.offset('net', 'ns.inum')}")
    if tracepoint is None:
        tracepoint = tracepoint_offsets()
    flags += [f"-DTP_{name.upper()}={off}" for name, off in tracepoint.items()]
    flags += [f"-DPAYLOAD_BYTES={config.payload_bytes}",
              f"-DSTREAM_SEGMENT_BYTES={config.stream_segment_bytes}", f"-DL7_BUDGET={config.l7_budget}"]
    return flags


def tracepoint_offsets() -> dict[str, int]:
    send = record_offsets(*TRACEPOINTS[0][:2], ("sk", "family", "protocol"), "Linux 6.3 or later")
    recv = record_offsets(*TRACEPOINTS[1][:2], ("sk", "family", "protocol"), "Linux 6.3 or later")
    if send != recv:
        raise TracepointError(f"sock_send_length and sock_recv_length records differ ({send} vs {recv}); "
                              f"expected one layout")
    return send


UPROBE_PMU = "/sys/bus/event_source/devices/uprobe"


def uprobes_available(pmu: str = UPROBE_PMU) -> str:
    """'' if this kernel can run uprobes, else the one-line reason it cannot."""
    if not os.path.exists(pmu):
        return "the kernel has no uprobe PMU (CONFIG_UPROBES / CONFIG_UPROBE_EVENTS off)"
    if os.geteuid() != 0:
        return "uprobes need root (CAP_SYS_ADMIN / CAP_BPF and CAP_PERFMON)"
    return ""


@dataclass
class TlsProgram:
    """The loaded program and the libssl files it is attached to."""

    config: TlsProgramConfig = field(default_factory=TlsProgramConfig)
    btf_path: str = ""
    attached: dict[tuple[int, int], str] = field(default_factory=dict)  # (dev, ino) -> path used
    uprobe_pmu: str = UPROBE_PMU
    _fds: dict[tuple[int, int], int] = field(default_factory=dict)  # (dev, ino) -> the open file the probes name

    def load(self):
        reason = uprobes_available(self.uprobe_pmu)
        if reason:
            raise TlsCaptureError(f"TLS capture off: {reason}")
        try:
            flags = program_cflags(load_btf(self.btf_path) if self.btf_path else load_btf(), self.config)
        except UserError as err:
            raise TlsCaptureError(f"TLS capture off: {err}") from None
        try:
            from bcc import BPF
        except ImportError:
            raise TlsCaptureError("TLS capture off: python module bcc not found: install Debian's "
                                  "python3-bpfcc (deploy/local/setup.sh)") from None
        try:
            self.bpf = BPF(src_file=BPF_SOURCE.encode(), cflags=[f"-I{os.path.dirname(BPF_SOURCE)}", *flags])
        except Exception as err:
            raise TlsCaptureError(f"TLS capture off: {BPF_SOURCE} does not load: {err}") from None
        try:
            for system, event, fn in TRACEPOINTS:
                self.bpf.attach_tracepoint(tp=f"{system}:{event}".encode(), fn_name=fn.encode())
        except Exception as err:
            self.bpf.cleanup()
            raise TlsCaptureError(f"TLS capture off: cannot attach to the sock tracepoints: {err}") from None
        return self.bpf

    def attach(self, identity: tuple[int, int], path: str) -> int:
        """Uprobes on the plaintext calls `path` exports; returns how many symbols were found.
        Raises OSError/Exception from bcc if the file cannot be probed.

        The probes name the file by a descriptor of this process's (/proc/self/fd/N), opened through
        `path`: the kernel resolves a uprobe's path itself and refuses one through another process's
        /proc/PID/root without CAP_SYS_ADMIN (EACCES, this kernel), while opening it needs only
        CAP_SYS_PTRACE. The descriptor stays open while the probes are attached (bcc reads the file
        again to detach)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        name = f"/proc/self/fd/{fd}".encode()
        found, refused = 0, ""
        try:
            for symbol, enter, leave in PROBES:
                try:
                    self.bpf.attach_uprobe(name=name, sym=symbol.encode(), fn_name=enter.encode())
                except Exception as err:  # noqa: BLE001 - bcc raises a bare Exception, for a missing symbol too
                    if "could not determine address" not in str(err):
                        refused = f"{symbol}: {err}"
                    continue
                if leave:
                    self.bpf.attach_uretprobe(name=name, sym=symbol.encode(), fn_name=leave.encode())
                found += 1
        finally:
            if found:
                self.attached[identity] = path
                self._fds[identity] = fd
            else:
                os.close(fd)
        if refused and not found:
            raise OSError(refused)  # the kernel refused the probes: not a file without the calls
        return found

    def detach(self, identity: tuple[int, int]) -> None:
        path = self.attached.pop(identity, None)
        if path is None:
            return
        fd = self._fds.pop(identity)
        name = f"/proc/self/fd/{fd}".encode()
        for symbol, _enter, leave in PROBES:
            for ret in (False, True) if leave else (False,):
                try:
                    if ret:
                        self.bpf.detach_uretprobe(name=name, sym=symbol.encode())
                    else:
                        self.bpf.detach_uprobe(name=name, sym=symbol.encode())
                except Exception:  # noqa: BLE001 - a symbol the file does not export was never attached
                    pass
        os.close(fd)

    def close(self) -> None:
        bpf = getattr(self, "bpf", None)
        if bpf is not None:
            bpf.cleanup()
            self.bpf = None
        self.attached.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
