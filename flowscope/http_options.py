"""Command-line options shared by the HTTP faces (the UI, the JSON API): authentication, read from a
file or the environment and never from an argument (common.secrets), and TLS certificate files."""

from __future__ import annotations

import argparse

from common.errors import UserError
from common.secrets import read_secret


def add_http_arguments(parser: argparse.ArgumentParser, prefix: str, env: str, what: str) -> None:
    """--{prefix}auth-token-file, --{prefix}basic-auth-file, --{prefix}tls-cert-file, --{prefix}tls-key-file;
    the secrets may instead be in ${env}_TOKEN / ${env}_BASIC_AUTH."""
    group = parser.add_argument_group(f"{what}: authentication and TLS")
    group.add_argument(f"--{prefix}auth-token-file", metavar="PATH",
                       help=f"require the bearer token in this file (or in ${env}_TOKEN); needed off loopback")
    group.add_argument(f"--{prefix}basic-auth-file", metavar="PATH",
                       help=f"require HTTP basic auth with the user:password in this file (or in ${env}_BASIC_AUTH)")
    group.add_argument(f"--{prefix}tls-cert-file", metavar="PATH", help="serve HTTPS with this certificate chain (PEM)")
    group.add_argument(f"--{prefix}tls-key-file", metavar="PATH", help=f"private key of --{prefix}tls-cert-file (PEM)")


def _value(args: argparse.Namespace, prefix: str, name: str):
    return getattr(args, (prefix + name).replace("-", "_"))


def http_auth(args: argparse.Namespace, prefix: str, env: str):
    """The ui.auth.Auth the options ask for; None when they ask for none."""
    from ui.auth import Auth
    token_flag, basic_flag = f"--{prefix}auth-token-file", f"--{prefix}basic-auth-file"
    token = read_secret(token_flag, _value(args, prefix, "auth-token-file"), f"{env}_TOKEN")
    basic = read_secret(basic_flag, _value(args, prefix, "basic-auth-file"), f"{env}_BASIC_AUTH")
    return Auth.parse(token, basic, token_from=f"{token_flag} (or ${env}_TOKEN)",
                      basic_from=f"{basic_flag} (or ${env}_BASIC_AUTH)")


def http_tls(args: argparse.Namespace, prefix: str):
    """The ui.serving.TLSFiles the options name; None without them."""
    cert, key = _value(args, prefix, "tls-cert-file"), _value(args, prefix, "tls-key-file")
    if not (cert or key):
        return None
    if not (cert and key):
        raise UserError(f"--{prefix}tls-cert-file and --{prefix}tls-key-file: expected both or neither")
    from ui.serving import TLSFiles
    return TLSFiles(cert, key)
