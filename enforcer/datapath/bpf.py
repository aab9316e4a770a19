"""The few libbpf calls the enforcer needs, through ctypes: create, pin and open maps, and read or
write their elements. bcc's Python API only reaches maps of a program it compiled; the policy maps
exist before (and outlive) any program, so they are handled here by file descriptor."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from common.errors import UserError

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_F_NO_PREALLOC = 1
BPF_ANY = 0


class BpfError(UserError):
    """A bpf() call failed (missing privileges, no bpffs, map full...)."""


class _MapCreateOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("map_extra", ctypes.c_uint64),
                ("numa_node", ctypes.c_uint32), ("map_ifindex", ctypes.c_uint32)]


class MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16), ("rest", ctypes.c_uint8 * 64)]


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "read map info")
    return info


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as err:
        raise BpfError(f"libbpf ({name}) not found: install Debian's libbpf1 ({err})") from err
    lib.bpf_map_create.restype = ctypes.c_int
    lib.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                   ctypes.c_uint32, ctypes.POINTER(_MapCreateOpts)]
    lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
    for fn in (lib.bpf_map_lookup_elem, lib.bpf_map_update_elem, lib.bpf_map_delete_elem,
               lib.bpf_map_get_next_key):
        fn.restype = ctypes.c_int
    lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.bpf_map_update_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64]
    lib.bpf_map_delete_elem.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.bpf_map_get_next_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _check(ret: int, what: str) -> int:
    if ret < 0:
        code = ctypes.get_errno() or -ret
        raise BpfError(f"{what}: {os.strerror(code)}")
    return ret


class BpfMap:
    """One map by file descriptor; keys and values are ctypes Structures (or c_uint32)."""

    def __init__(self, fd: int, key_type: type, value_type: type, name: str) -> None:
        self.fd = fd
        self.key_type = key_type
        self.value_type = value_type
        self.name = name

    @classmethod
    def create_or_open(cls, name: str, map_type: int, key_type: type, value_type: type,
                       max_entries: int, flags: int = 0, pin_path: str | None = None) -> "BpfMap":
        """Open the map pinned at `pin_path`, or create it (and pin it there when a path is given)."""
        if pin_path and os.path.exists(pin_path):
            fd = _check(lib().bpf_obj_get(pin_path.encode()), f"open pinned map {pin_path}")
            info = map_info(fd)
            if (info.key_size, info.value_size) != (ctypes.sizeof(key_type), ctypes.sizeof(value_type)):
                os.close(fd)
                raise BpfError(f"pinned map {pin_path} has key/value sizes {info.key_size}/{info.value_size}, "
                               f"expected {ctypes.sizeof(key_type)}/{ctypes.sizeof(value_type)} (made by an older "
                               "flowscope): stop the collector and remove the pin dir")
            return cls(fd, key_type, value_type, name)
        opts = _MapCreateOpts(sz=ctypes.sizeof(_MapCreateOpts), map_flags=flags)
        fd = _check(lib().bpf_map_create(map_type, name[:15].encode(), ctypes.sizeof(key_type),
                                         ctypes.sizeof(value_type), max_entries, ctypes.byref(opts)),
                    f"create map {name}")
        if pin_path:
            os.makedirs(os.path.dirname(pin_path), exist_ok=True)
            _check(lib().bpf_obj_pin(fd, pin_path.encode()), f"pin map {name} at {pin_path}")
        return cls(fd, key_type, value_type, name)

    def update(self, key, value) -> None:
        _check(lib().bpf_map_update_elem(self.fd, ctypes.byref(key), ctypes.byref(value), BPF_ANY),
               f"update {self.name}")

    def delete(self, key) -> bool:
        ret = lib().bpf_map_delete_elem(self.fd, ctypes.byref(key))
        if ret < 0 and (ctypes.get_errno() or -ret) == errno.ENOENT:
            return False
        _check(ret, f"delete from {self.name}")
        return True

    def lookup(self, key):
        value = self.value_type()
        ret = lib().bpf_map_lookup_elem(self.fd, ctypes.byref(key), ctypes.byref(value))
        return value if ret == 0 else None

    def keys(self) -> list:
        """All keys (a snapshot; the map may change meanwhile)."""
        found = []
        prev = None
        while True:
            key = self.key_type()
            ret = lib().bpf_map_get_next_key(self.fd, ctypes.byref(prev) if prev is not None else None,
                                             ctypes.byref(key))
            if ret != 0:
                return found
            found.append(key)
            prev = key

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
