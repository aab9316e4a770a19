"""Typed access to one YAML value with its field path: every check that fails raises PolicyError
naming the file, document, path and what was expected."""

from __future__ import annotations

from typing import Any

from enforcer.policy.errors import PolicyError
from enforcer.policy.source import Document


class Field:
    def __init__(self, doc: Document, value: Any, path: str = "") -> None:
        self.doc = doc
        self.value = value
        self.path = path

    def fail(self, reason: str) -> PolicyError:
        return self.doc.error(self.path, reason)

    def child(self, key: str | int, value: Any) -> "Field":
        if isinstance(key, int):
            return Field(self.doc, value, f"{self.path}[{key}]")
        return Field(self.doc, value, f"{self.path}.{key}" if self.path else key)

    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, "Field"]:
        """The value as a mapping of known keys; unknown keys are rejected (a typo must not silently
        widen a policy)."""
        if self.value is None:
            self.value = {}
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {_kind(self.value)}")
        for key in self.value:
            if key not in allowed:
                raise self.child(key, None).fail(f"unknown field (expected one of: {', '.join(allowed)})")
        for key in required:
            if key not in self.value:
                raise self.child(key, None).fail("required field is missing")
        return {k: self.child(k, v) for k, v in self.value.items()}

    def items(self) -> list["Field"]:
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_kind(self.value)}")
        return [self.child(i, v) for i, v in enumerate(self.value)]

    def string(self, allow_empty: bool = False) -> str:
        if not isinstance(self.value, str) or (not allow_empty and not self.value):
            raise self.fail(f"expected a non-empty string, got {_kind(self.value)}")
        return self.value

    def choice(self, options: tuple[str, ...], case_insensitive: bool = False) -> str:
        value = self.string()
        for option in options:
            if value == option or (case_insensitive and value.upper() == option.upper()):
                return option
        raise self.fail(f"expected one of {', '.join(options)}, got {value!r}")

    def integer(self, lo: int, hi: int) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {_kind(self.value)}")
        if not lo <= self.value <= hi:
            raise self.fail(f"{self.value} is out of range {lo}-{hi}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def string_map(self) -> dict[str, str]:
        out = {}
        keys = tuple(self.value) if isinstance(self.value, dict) else ()
        for key, value in self.mapping(keys).items():
            if isinstance(value.value, bool) or value.value is None or isinstance(value.value, (dict, list)):
                raise value.fail(f"expected a string value, got {_kind(value.value)}")
            out[key] = str(value.value)
        return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
