"""`flowscope list nodes|namespaces`: the nodes a relay follows and the namespaces with recent flows,
like `hubble list` (table, wide, json)."""

from __future__ import annotations

import argparse
import sys

import grpc

from common.errors import UserError
from flowscope import hubble_format
from flowscope.connection import add_server_arguments, connect
from proto.observer import observer_pb2, observer_pb2_grpc

OUTPUTS = ("json", "table", "wide")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="list_what", required=True, metavar="WHAT")
    for name, aliases, help_text in (("nodes", ["node"], "the nodes and their state, flows and uptime"),
                                     ("namespaces", [], "namespaces with flows in the last hour")):
        p = sub.add_parser(name, aliases=aliases, help=help_text, description=help_text)
        p.add_argument("-o", "--output", choices=OUTPUTS, default="table",
                       help="table (default), wide (with version, address, TLS), json")
        add_server_arguments(p)


def run(args: argparse.Namespace) -> int:
    ch = connect(args)
    stub = observer_pb2_grpc.ObserverStub(ch)
    try:
        if args.list_what in ("nodes", "node"):
            items = sorted(stub.GetNodes(observer_pb2.GetNodesRequest(), timeout=args.timeout).nodes,
                           key=lambda n: n.name)
            table = hubble_format.node_table
        else:
            items = list(stub.GetNamespaces(observer_pb2.GetNamespacesRequest(), timeout=args.timeout).namespaces)
            table = hubble_format.namespace_table
    except grpc.RpcError as err:
        raise UserError(f"{args.server}: {err.code().name.lower()}: {err.details()}") from None
    finally:
        ch.close()
    if args.output == "json":
        sys.stdout.write(hubble_format.json_list(items))
    else:
        sys.stdout.write(table(items, wide=args.output == "wide"))
    return 0
