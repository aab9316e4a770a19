"""The running kernel's type information (BTF), for the few kernel structs a BPF program must read.

bcc compiles against Debian's 6.1 headers, but the kernel is newer: its struct sk_buff has another
layout. BTF (/sys/kernel/btf/vmlinux) describes the RUNNING kernel, so field offsets and enum values are
taken from it and handed to the program as -D constants. This is a small reader of the BTF binary
format (linux/btf.h): types are a flat array, each a 12-byte header plus kind-specific records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from common.errors import UserError

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_MAGIC = 0xEB9F

# BTF kinds (linux/btf.h) and the size of the records that follow each type header.
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT = range(1, 12)
_FUNC, _FUNC_PROTO, _VAR, _DATASEC, _FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = range(12, 20)
_MODIFIERS = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)


def _extra_size(kind: int, vlen: int) -> int:
    if kind in (_INT, _VAR, _DECL_TAG):
        return 4
    if kind == _ARRAY:
        return 12
    if kind in (_STRUCT, _UNION, _DATASEC, _ENUM64):
        return 12 * vlen
    if kind in (_ENUM, _FUNC_PROTO):
        return 8 * vlen
    return 0


class BtfError(UserError):
    """BTF missing, unreadable, or without a type flowscope needs."""


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    type_id: int
    bit_offset: int


class Btf:
    """Named structs/unions (with members) and enums of one BTF blob."""

    def __init__(self, data: bytes, source: str = "BTF") -> None:
        self.source = source
        if len(data) < 24 or struct.unpack_from("<H", data)[0] != _MAGIC:
            raise BtfError(f"{source}: not a BTF file (bad magic); expected the kernel's BTF such as "
                           f"{VMLINUX_BTF}")
        _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        types = data[hdr_len + type_off: hdr_len + type_off + type_len]
        strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        self._kinds: list[int] = [0]  # type id 0 is void
        self._refs: list[int] = [0]   # referenced type (modifiers, pointers)
        self._members: dict[int, list[_Member]] = {}
        self._by_name: dict[str, int] = {}
        self._enums: dict[str, dict[str, int]] = {}
        name_cache: dict[int, str] = {}

        def name(off: int) -> str:
            found = name_cache.get(off)
            if found is None:
                found = strings[off:strings.index(b"\0", off)].decode()
                name_cache[off] = found
            return found

        pos, end = 0, len(types)
        unpack = struct.unpack_from
        while pos < end:
            name_off, info, size_or_type = unpack("<III", types, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            type_id = len(self._kinds)
            self._kinds.append(kind)
            self._refs.append(size_or_type)
            body = pos + 12
            if kind in (_STRUCT, _UNION):
                bitfields = bool(info >> 31)
                members = []
                for i in range(vlen):
                    m_name, m_type, m_off = unpack("<III", types, body + 12 * i)
                    members.append(_Member(name(m_name), m_type, m_off & 0xFFFFFF if bitfields else m_off))
                self._members[type_id] = members
                if name_off:
                    self._by_name.setdefault(f"struct {name(name_off)}", type_id)
            elif kind in (_ENUM, _ENUM64) and name_off:
                step = 8 if kind == _ENUM else 12
                values = {}
                for i in range(vlen):
                    v_name, lo = unpack("<Ii", types, body + step * i) if kind == _ENUM else \
                        unpack("<II", types, body + step * i)
                    values[name(v_name)] = lo
                self._enums[name(name_off)] = values
            pos = body + _extra_size(kind, vlen)

    def _resolve(self, type_id: int) -> int:
        while self._kinds[type_id] in _MODIFIERS:
            type_id = self._refs[type_id]
        return type_id

    def _find(self, type_id: int, field: str) -> tuple[int, int] | None:
        """(bit offset, member type) of `field`, searching anonymous struct/union members too."""
        for m in self._members.get(self._resolve(type_id), ()):
            if m.name == field:
                return m.bit_offset, m.type_id
            if not m.name:
                inner = self._find(m.type_id, field)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of `path` ("nd_net.net") inside `struct struct_name`."""
        type_id = self._by_name.get(f"struct {struct_name}")
        if type_id is None:
            raise BtfError(f"{self.source}: no struct {struct_name} in the kernel's BTF")
        bits = 0
        for part in path.split("."):
            found = self._find(type_id, part)
            if found is None:
                raise BtfError(f"{self.source}: struct {struct_name} has no field {path!r} in this kernel")
            bits += found[0]
            type_id = found[1]
        if bits % 8:
            raise BtfError(f"{self.source}: {struct_name}.{path} is a bitfield; expected a byte-aligned field")
        return bits // 8

    def enum(self, name: str) -> dict[str, int]:
        values = self._enums.get(name)
        if values is None:
            raise BtfError(f"{self.source}: no enum {name} in the kernel's BTF")
        return values


def load_btf(path: str = VMLINUX_BTF) -> Btf:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BtfError(f"{path}: kernel BTF not found; flowscope needs a kernel built with "
                       f"CONFIG_DEBUG_INFO_BTF=y to read kernel structs (kernel drops)") from None
    except OSError as err:
        raise BtfError(f"{path}: cannot read kernel BTF: {err.strerror} (run as root)") from None
    return Btf(data, path)
