"""The loader's one error type: which file, which YAML document, which field, and why."""

from __future__ import annotations

from common.errors import UserError


class PolicyError(UserError):
    """An invalid policy. `path` is the field path inside the document, e.g. spec.ingress[0].ports[1].port."""

    def __init__(self, file: str, document: int, path: str, reason: str, line: int | None = None) -> None:
        self.file = file
        self.document = document
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{file}" + (f":{line}" if line else "") + f" (document {document})"
        super().__init__(f"{where}: {path or '<document>'}: {reason}")
