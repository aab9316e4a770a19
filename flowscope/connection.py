"""The connection flags of the commands that talk to a Hubble API server (status, list, watch): the
same names, meanings and defaults as `flowscope observe` and hubble's server flags, resolved from
HUBBLE_* and Hubble's config file as hubble does (flowscope.hubble_config)."""

from __future__ import annotations

import argparse

import grpc

from flowscope import hubble_config

def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """observe's "server" flags (--server, --timeout, --tls...), taken from observe's own parser so
    that every command connects with one definition of them, plus --config."""
    from flowscope.commands import observe
    donor = argparse.ArgumentParser(add_help=False)
    observe.add_arguments(donor)
    server = next(g for g in donor._action_groups if g.title == "server")
    conn = parser.add_argument_group("server")
    for action in server._group_actions:
        conn._add_action(action)
    hubble_config.add_config_argument(parser)


def connect(args: argparse.Namespace) -> grpc.Channel:
    """A ready channel to args.server (flags resolved first), or a one-line UserError."""
    from flowscope.commands.observe import _connect  # one way to connect for every command
    hubble_config.resolve(args)
    return _connect(args)


def target(server: str) -> str:
    """The address as hubble names it in its output (conn.Target(): without tls://)."""
    return server.removeprefix("tls://")
