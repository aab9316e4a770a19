"""Secrets (tokens, passwords) come from a file or an environment variable, never from a command-line
argument: arguments are readable by every local user in /proc/PID/cmdline and `ps`, and end up in shell
history. Kubernetes hands a Secret over either way (a mounted file or `env.valueFrom.secretKeyRef`).
"""

from __future__ import annotations

import os
import pathlib
from typing import Mapping

from common.errors import UserError


def read_secret(flag: str, path: str | None, env: str,
                environ: Mapping[str, str] = os.environ) -> str | None:
    """The secret in the file `path` (given with `flag`), else in $`env`; None when neither is set.
    A file's trailing newline is not part of the secret (`echo T > file` writes one)."""
    if path:
        try:
            value = pathlib.Path(path).read_text().rstrip("\r\n")
        except OSError as err:
            raise UserError(f"{flag} {path}: cannot read the secret: {err.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"{flag} {path}: expected text (a token or user:password)") from None
        if not value:
            raise UserError(f"{flag} {path}: the file is empty; expected the secret")
        return value
    return environ.get(env) or None
