"""`flowscope lab up|down|status`: build, remove and inspect the lab described by a topology file."""

from __future__ import annotations

import argparse
import os

from common.errors import UserError
from lab import manager
from lab.state import DEFAULT_STATE_DIR, state_files, state_path, watched
from lab.topology import load_topology


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("-f", "--file", help="topology file, e.g. deploy/lab/demo.yaml")
    parser.add_argument("--name", help="lab name (instead of -f, for down and status)")
    parser.add_argument("--all", action="store_true", help="down: remove every recorded lab")
    parser.add_argument("--force", action="store_true",
                        help="up: recreate the lab even while a collector or `flowscope up` watches it")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help=f"where lab state files live (default {DEFAULT_STATE_DIR})")


def _lab_path(args: argparse.Namespace) -> str:
    if args.name:
        return state_path(args.name, args.state_dir)
    if args.file:
        return state_path(load_topology(args.file).name, args.state_dir)
    recorded = state_files(args.state_dir)
    if len(recorded) == 1:
        return recorded[0]
    raise UserError(f"which lab? give -f <topology file> or --name (recorded labs: "
                    f"{', '.join(recorded) or 'none'})")


def run(args: argparse.Namespace) -> int:
    if args.action == "up":
        if not args.file:
            raise UserError("lab up needs -f <topology file>, e.g. -f deploy/lab/demo.yaml")
        topology = load_topology(args.file)
        path = state_path(topology.name, args.state_dir)
        if os.path.exists(path) and watched(args.state_dir) and not args.force:
            raise UserError(f"lab {topology.name} is up and a running collector or `flowscope up` is watching "
                            f"it ({path}): `lab up` would tear its pods down and recreate them under it; stop "
                            "that first, or pass --force")
        state = manager.up(topology, args.state_dir)
        print(f"lab {state.name} is up: {len(state.pods)} pods, {len(state.world)} world hosts; "
              f"state {state.path}")
        return 0
    if args.action == "down":
        if args.all:
            removed = manager.down_all(args.state_dir)
        else:
            path = _lab_path(args)
            if not os.path.exists(path):
                print(f"nothing to remove: no lab state file {path}")
                return 0
            removed = [manager.down(path)]
        for state in removed:
            print(f"lab {state.name} removed")
        if not removed:
            print("no lab recorded")
        return 0
    state, hosts = manager.status(_lab_path(args))
    print(f"lab {state.name} (topology {state.topology}, state {state.path})")
    print(f"{'NAMESPACE':<12} {'POD':<32} {'NODE':<10} {'IPV4':<15} {'IPV6':<22} {'DEVICE':<16} "
          f"{'UP':<3} {'CMDS':<5} LABELS")
    for s in hosts:
        h = s.host
        labels = ",".join(f"{k}={v}" for k, v in sorted(h.labels.items())) or ",".join(h.dns_names)
        cmds = f"{sum(s.running)}/{len(s.running)}"
        print(f"{h.namespace or '(world)':<12} {h.name:<32} {h.node or '-':<10} {h.ipv4:<15} {h.ipv6:<22} "
              f"{h.device:<16} {'yes' if s.present else 'NO':<3} {cmds:<5} {labels}")
    return 0 if all(s.present and all(s.running) for s in hosts) else 3
