"""`flowscope watch peers`: the relay's nodes as they come and go, like `hubble watch peers` (the
peer.Peer Notify stream: every known node first, then each change, one line each)."""

from __future__ import annotations

import argparse
import sys

import grpc

from common.errors import UserError
from flowscope import hubble_format
from flowscope.connection import add_server_arguments, connect
from proto.peer import peer_pb2, peer_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="watch_what", required=True, metavar="WHAT")
    p = sub.add_parser("peers", aliases=["peer"], help="watch for peer (node) updates",
                       description="watch for peer (node) updates")
    add_server_arguments(p)


def run(args: argparse.Namespace) -> int:
    ch = connect(args)
    call = peer_pb2_grpc.PeerStub(ch).Notify(peer_pb2.NotifyRequest())
    try:
        for change in call:
            sys.stdout.write(hubble_format.peer_line(change))
            sys.stdout.flush()  # a line as it happens, also into a pipe
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise UserError(f"{args.server}: {err.code().name.lower()}: {err.details()}") from None
    except (KeyboardInterrupt, BrokenPipeError):
        call.cancel()
    finally:
        ch.close()
    return 0
