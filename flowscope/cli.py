"""flowscope: Hubble-style network flow observability with history, L7 and policy enforcement.

Each subcommand is a module of flowscope/commands/ that wires the packages its job needs; only the chosen one is imported, so `flowscope observe` does not pay for Dash or the BPF compiler.

A subcommand module provides `add_arguments(parser)` and `run(args) -> int`.
"""

import argparse
import importlib
import logging
import os
import sys

from common.version import __version__
from common.errors import UserError

# gRPC's core logs each failed TLS handshake at INFO on stderr; the commands explain failures in one
# line of their own. Before any command imports grpc.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("flowscope.commands.lab", "create, inspect and remove the single-machine lab of pods"),
    "collector": ("flowscope.commands.collector", "run the node collector: eBPF datapath, Observer API on :4244"),
    "observe": ("flowscope.commands.observe", "observe flows from a collector or relay, like `hubble observe`"),
    "status": ("flowscope.commands.status", "health and flow counters of a collector or relay, like `hubble status`"),
    "list": ("flowscope.commands.list", "list nodes or namespaces of a relay, like `hubble list`"),
    "watch": ("flowscope.commands.watch", "watch the relay's peers come and go, like `hubble watch peers`"),
    "relay": ("flowscope.commands.relay", "run the relay: merge collectors, Observer API on :4245, write storage"),
    "up": ("flowscope.commands.up", "collector + relay + embedded storage + UI in one process (single machine)"),
    "ui": ("flowscope.commands.ui", "serve the Dash UI on :8050"),
    "policy": ("flowscope.commands.policy", "suggest, check, apply and remove network policies"),
    "storage": ("flowscope.commands.storage", "create or migrate the flow store, show its status"),
    "certs": ("flowscope.commands.certs", "generate a CA and the TLS certificates of every gRPC hop"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowscope", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"flowscope {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.run(args) or 0
    except UserError as err:
        print(f"flowscope {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
