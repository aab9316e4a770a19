"""The ClickHouse password of a clickhouse:// store, from a file or the environment (common.secrets):
`--storage clickhouse://user@host:9000/db` plus `--storage-password-file` or $FLOWSCOPE_STORAGE_PASSWORD.
A password written into the URL still works but is readable by every local user in the process list.
A server off loopback without any password is refused: it would hand every stored flow to anyone who
reaches its port."""

from __future__ import annotations

import argparse
import urllib.parse

from common.errors import UserError
from common.secrets import read_secret

PASSWORD_ENV = "FLOWSCOPE_STORAGE_PASSWORD"


def add_storage_password_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-password-file", metavar="PATH",
                        help=f"password of a clickhouse:// store (or in ${PASSWORD_ENV}); it replaces one "
                             "written in the URL, which every local user can read in the process list")


def storage_url(args: argparse.Namespace) -> str:
    """--storage with the password from --storage-password-file / $FLOWSCOPE_STORAGE_PASSWORD put in."""
    url = args.storage
    password = read_secret("--storage-password-file", args.storage_password_file, PASSWORD_ENV)
    if not url.lower().startswith("clickhouse://"):
        return url
    parts = urllib.parse.urlsplit(url)
    if password is None:
        from ui.auth import is_loopback
        if not parts.password and parts.hostname and not is_loopback(parts.hostname):
            raise UserError(f"--storage clickhouse://...@{parts.hostname}: a server off loopback needs a "
                            f"password; expected --storage-password-file or ${PASSWORD_ENV}")
        return url
    userinfo, at, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] if at else "default"
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
