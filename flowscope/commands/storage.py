"""`flowscope storage migrate|status|retention --storage URL`."""

from __future__ import annotations

import argparse
import json

from storage.open import open_store
from flowscope.storage_options import add_storage_password_argument, storage_url
from storage.url import DEFAULT_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("migrate", "status", "retention"),
                        help="migrate: create/upgrade the schema; status: versions, flows, size; "
                             "retention: drop partitions older than retention_days")
    parser.add_argument("--storage", default=DEFAULT_URL, metavar="URL",
                        help=f"chdb:///dir or clickhouse://user:pass@host:9000/db (default {DEFAULT_URL})")
    add_storage_password_argument(parser)
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    store = open_store(storage_url(args))
    if args.action == "migrate":
        applied = store.migrate()
        result = {"applied": applied, "schema_version": store.schema_version()}
    elif args.action == "retention":
        store.require_schema()
        result = {"dropped": store.enforce_retention()}
    else:
        store.require_schema()
        result = store.status()
    if args.output == "json":
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
