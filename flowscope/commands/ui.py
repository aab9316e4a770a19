"""`flowscope ui`: serve the Dash UI over a flow store (read-only)."""

from __future__ import annotations

import argparse

from flowscope.http_options import add_http_arguments, http_auth, http_tls
from flowscope.storage_options import add_storage_password_argument, storage_url
from storage.url import DEFAULT_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=DEFAULT_URL,
                        help=f"flow store URL: chdb:///dir or clickhouse://user:pass@host:9000/db (default {DEFAULT_URL})")
    add_storage_password_argument(parser)
    parser.add_argument("--address", default="127.0.0.1:8050",
                        help="host:port to listen on (default 127.0.0.1:8050; other than loopback needs auth)")
    add_http_arguments(parser, "", "FLOWSCOPE_UI", "UI")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback address without authentication")
    parser.add_argument("--refresh", type=float, default=5.0, help="live mode refresh in seconds (default 5)")
    parser.add_argument("--pin-dir", default="/sys/fs/bpf/flowscope",
                        help="datapath pin dir whose applied policies the policy page compares against")


def http_settings(args: argparse.Namespace):
    """(auth, tls) of the options; raises UserError for an address off loopback without auth (unless
    --insecure) before any store is opened: fail fast."""
    from ui.auth import check_address, parse_address
    auth, tls = http_auth(args, "", "FLOWSCOPE_UI"), http_tls(args, "")
    check_address(parse_address(args.address)[0], auth, args.insecure)
    return auth, tls


def run(args: argparse.Namespace) -> int:
    from storage import DeferredStore, StorageUnavailable, open_store, parse_url
    from ui.app import serve
    from ui.auth import UIConfigError

    if args.refresh < 1:
        raise UIConfigError(f"--refresh {args.refresh}: expected at least 1 second")
    auth, tls = http_settings(args)
    url = storage_url(args)
    if parse_url(url).scheme == "chdb":
        store = open_store(url)
        store.require_schema()
    else:
        # A ClickHouse server that is not up yet: serve anyway, each view says the store did not answer
        # until it does (no crash loop through the database's rollout).
        store = DeferredStore(url, migrate=False)
        try:
            store.connect()
        except StorageUnavailable:
            pass  # logged by the store
    serve(store, args.address, auth=auth, insecure=args.insecure, tls=tls, refresh_s=args.refresh,
          pin_dir=args.pin_dir)
    return 0
