"""`flowscope status`: the server's health and flow counters, like `hubble status` — the gRPC health
check of "hubble.server.Observer", then ServerStatus, printed as hubble does (compact, dict, json, table)."""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.errors import UserError
from flowscope import hubble_format
from flowscope.connection import add_server_arguments, connect, target
from proto.observer import observer_pb2, observer_pb2_grpc

HEALTH_SERVICE = "hubble.server.Observer"
OUTPUTS = ("compact", "dict", "json", "jsonpb", "table")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=OUTPUTS, default="compact",
                        help="compact (default), dict (KEY: VALUE), json, table")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    output = "json" if args.output == "jsonpb" else args.output
    ch = connect(args)
    try:
        try:
            health = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=args.timeout)
        except grpc.RpcError as err:
            raise UserError(f"failed getting status: {args.server}: {err.code().name.lower()}: "
                            f"{err.details()}") from None
        serving = health.status == health_pb2.HealthCheckResponse.SERVING
        text = "Ok" if serving else \
            f"Unavailable: {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}"
        if output == "compact":
            sys.stdout.write(hubble_format.healthcheck_line(target(args.server), text))
        if not serving:
            raise UserError("not healthy")
        try:
            status = observer_pb2_grpc.ObserverStub(ch).ServerStatus(observer_pb2.ServerStatusRequest(),
                                                                     timeout=args.timeout)
        except grpc.RpcError as err:
            raise UserError(f"failed to get hubble server status: {err.code().name.lower()}: "
                            f"{err.details()}") from None
        sys.stdout.write(hubble_format.server_status(status, output))
    finally:
        ch.close()
    return 0
