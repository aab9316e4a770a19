"""`flowscope policy suggest|check|apply|remove|list`."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

from common.errors import UserError
from flowscope.storage_options import add_storage_password_argument, storage_url

DEFAULT_STORAGE = "chdb:///var/lib/flowscope/db"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    p = sub.add_parser("suggest", help="least-privilege policies per workload from stored flows")
    _history_args(p, "1h")
    p.add_argument("--namespace", "-n", action="append", default=[], help="only workloads of this namespace")
    p.add_argument("--format", choices=("k8s", "cilium"), default="k8s")
    p.add_argument("--l7", action="store_true", help="HTTP rules with generalised paths (cilium format; "
                   "audited by `policy check`, not enforced: that needs a proxy)")
    p.add_argument("-o", "--output-dir", help="write one file per workload here (default: stdout)")
    p.add_argument("--lab-state", help="lab state file: its pods check that selectors select exactly")

    p = sub.add_parser("check", help="replay stored flows against policies: what would they deny?")
    p.add_argument("files", nargs="+", help="policy files or directories")
    _history_args(p, "24h")

    p = sub.add_parser("apply", help="load policies into the running datapath (map writes, no reload)")
    p.add_argument("files", nargs="+", help="policy files or directories")
    p.add_argument("--audit", action="store_true", help="audit mode: forward, and report AUDIT instead of dropping")
    _datapath_args(p)

    p = sub.add_parser("remove", help="take policies out of the datapath")
    p.add_argument("names", nargs="*", help="policy names (name, namespace/name), files, or `all`")
    p.add_argument("--all", action="store_true", help="remove every policy; when no collector runs, also "
                   "detach the programs stopped collectors left enforcing")
    _datapath_args(p)

    p = sub.add_parser("mode", help="enforce or audit the pods of a namespace (audit: forward, report AUDIT)")
    p.add_argument("namespace")
    p.add_argument("mode", choices=("enforce", "audit"))
    _datapath_args(p)

    p = sub.add_parser("list", help="the policies applied to the datapath")
    _datapath_args(p)


def _history_args(p: argparse.ArgumentParser, since: str) -> None:
    p.add_argument("--since", default=since, help=f"start of the window (duration back or RFC 3339; default {since})")
    p.add_argument("--until", default=None, help="end of the window (default now)")
    p.add_argument("--storage", default=os.environ.get("FLOWSCOPE_STORAGE", DEFAULT_STORAGE), help="flow store URL")
    add_storage_password_argument(p)
    p.add_argument("--server", metavar="HOST:PORT",
                   help="read the history through a relay's Observer API instead of opening the store "
                        "(needed while `flowscope up` or `flowscope relay` holds an embedded store), e.g. localhost:4245")
    from common.tls import add_client_arguments
    add_client_arguments(p.add_argument_group("TLS towards --server (hubble observe's flags)"))


def _datapath_args(p: argparse.ArgumentParser) -> None:
    from enforcer.datapath.maps import default_pin_dir
    p.add_argument("--pin-dir", default=default_pin_dir(), help="the collector's bpffs pin dir")
    p.add_argument("--lab-state", default=None, help="lab state file (default: every lab)")
    p.add_argument("--identity-state", default="/var/lib/flowscope/identities.json",
                   help="the collector's identity table")


def run(args: argparse.Namespace) -> int:
    return {"suggest": _suggest, "check": _check, "apply": _apply, "remove": _remove, "mode": _mode,
            "list": _list}[args.policy_command](args)


def _window(args) -> tuple[int, int]:
    from common.timeparse import parse_time_ns
    now = time.time_ns()
    since = parse_time_ns("--since", args.since, now)
    until = parse_time_ns("--until", args.until, now) if args.until else now
    if since > until:
        raise UserError(f"--since {args.since} is after --until {args.until}")
    return since, until


def _store(url: str):
    try:
        from storage import open_store
    except ImportError as err:
        raise UserError(f"flow storage is not available ({err})") from err
    try:
        return open_store(url)
    except UserError as err:
        if url.startswith("chdb:"):
            raise UserError(f"{err} — if `flowscope up` or `flowscope relay` is running on this store, read "
                            "through it instead: --server localhost:4245") from None
        raise


def _flows(args, label: str):
    from enforcer.history import iter_flows, stderr_progress
    since, until = _window(args)
    if args.server:
        from common.tls import client_tls_from_args
        from relay.history_client import RelayFlowSource
        source = RelayFlowSource(*client_tls_from_args(args, args.server))
    else:
        source = _store(storage_url(args))
    return iter_flows(source, since, until, progress=stderr_progress(label))


def _suggest(args) -> int:
    from enforcer.peers import from_endpoint
    from enforcer.suggest import SuggestOptions, observe, suggest
    obs = observe(_flows(args, "reading flows"))
    known = [from_endpoint(e) for e in _lab_endpoints(args.lab_state)] if args.lab_state else []
    suggestions = suggest(obs, SuggestOptions(args.format, args.l7, tuple(args.namespace), known))
    if not suggestions:
        raise UserError(f"no flows of pods between --since {args.since} and --until {args.until or 'now'} in "
                        f"{args.server or args.storage}: nothing to suggest from")
    for s in suggestions:
        for w in s.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if args.output_dir:
        out = pathlib.Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for s in suggestions:
            path = out / f"{s.namespace}-{s.workload}.yaml"
            path.write_text(s.yaml())
            print(path)
    else:
        print("---\n".join(s.yaml() for s in suggestions), end="")
    print(f"{len(suggestions)} policies from {obs.flows} flows", file=sys.stderr)
    return 0


def _check(args) -> int:
    from enforcer.check import check_flows, render
    from enforcer.policy import load_policies
    policies = load_policies(args.files)
    report = check_flows(_flows(args, "replaying flows"), policies)
    print(render(report))
    return 0


def _lab_endpoints(path: str | None):
    try:
        from lab import endpoints_from_state
        return endpoints_from_state(path)
    except FileNotFoundError as err:
        raise UserError(f"lab state {path or '(default dir)'}: {err}") from err


def _fqdn_ips(path: str | None, pin_dir: str) -> dict[str, tuple[str, ...]]:
    """Addresses for toFQDNs: those DNS answers gave (learned by the collector), and the lab's outside
    hosts with their DNS names."""
    from enforcer.runtime import load_fqdn_ips
    ips = load_fqdn_ips(pin_dir)
    try:
        from lab import world_hosts_from_state
        hosts = world_hosts_from_state(path)
    except Exception:   # no lab: only the learned answers
        return ips
    for h in hosts:
        for ip in h.ips:
            if ip:
                ips[ip] = tuple(dict.fromkeys((*ips.get(ip, ()), *h.dns_names)))
    return ips


def _apply(args) -> int:
    from enforcer.apply import apply_policies, local_addresses
    from enforcer.policy import load_policies
    policies = load_policies(args.files)
    report = apply_policies(policies, args.pin_dir, _lab_endpoints(args.lab_state), args.audit,
                            args.identity_state, local_addresses(), _fqdn_ips(args.lab_state, args.pin_dir))
    _print_report(report, "applied", report.applied, args)
    return 0


def _remove(args) -> int:
    from enforcer.apply import local_addresses, remove_policies
    from enforcer.policy import load_policies
    if not args.names and not args.all:
        raise UserError("policy remove: name the policies to remove (name, namespace/name or files), or --all")
    everything = args.all or "all" in args.names
    names = [n for n in args.names if not os.path.exists(n)] + (["all"] if args.all else [])
    files = [n for n in args.names if os.path.exists(n)]
    names += [p.key for p in load_policies(files)] if files else []
    report = remove_policies(names, args.pin_dir, _lab_endpoints(args.lab_state), args.identity_state,
                             local_addresses(), _fqdn_ips(args.lab_state, args.pin_dir))
    if not report.removed and not everything:
        raise UserError(f"no applied policy named {', '.join(args.names)} (see `flowscope policy list`)")
    _print_report(report, "removed", report.removed, args)
    if everything:
        _detach_if_unused(args.pin_dir)
    return 0


def _detach_if_unused(pin_dir: str) -> None:
    """Removing every policy is one of the two ways (with `collector --uninstall`) to take out the
    programs that stopped collectors left enforcing: with empty maps they only pass traffic, and no
    collector reads their events."""
    from collector.datapath.owner import collector_running
    from collector.datapath.teardown import detach_left_over
    if collector_running(pin_dir):
        return   # its programs observe; it detaches them itself on a clean stop without policies
    done = detach_left_over(pin_dir)
    if done.detached:
        print(f"detached the programs a stopped collector left on {', '.join(sorted(done.detached))}")


def _mode(args) -> int:
    from enforcer.apply import local_addresses, sync_datapath
    from enforcer.datapath.registry import Registry
    registry = Registry.load(args.pin_dir)
    audit = set(registry.audit_namespaces)
    audit = audit | {args.namespace} if args.mode == "audit" else audit - {args.namespace}
    registry.audit_namespaces = sorted(audit)
    registry.save()
    result, _stats, _running = sync_datapath(registry, args.pin_dir, _lab_endpoints(args.lab_state),
                                             args.identity_state, local_addresses(),
                                             _fqdn_ips(args.lab_state, args.pin_dir))
    pods = sum(1 for key in result.selected if key.split("/", 1)[0] == args.namespace)
    print(f"namespace {args.namespace}: {args.mode} ({pods} pods under policy)")
    return 0


def endpoint_modes(endpoints: dict) -> str:
    """'3 endpoints enforced, 2 audited': an audited endpoint forwards what policy would drop (and
    reports AUDIT), so counting it as enforced would tell the user traffic is being blocked when it is not."""
    from enforcer.datapath.maps import EP_AUDIT
    audited = sum(1 for _identity, flags, *_ids in endpoints.values() if flags & EP_AUDIT)
    enforced = len(endpoints) - audited
    if audited and not enforced:
        return f"{audited} endpoints audited (none enforced)"
    if audited:
        return f"{enforced} endpoints enforced, {audited} audited"
    return f"{enforced} endpoints enforced"


def _print_report(report, verb: str, keys: list[str], args) -> None:
    state = report.result.state
    print(f"{verb} {len(keys)} policies ({', '.join(keys)}): {endpoint_modes(state.endpoints)}, "
          f"{len(state.rules)} rule entries, {len(state.ipcache)} ipcache entries "
          f"({report.stats.written} written, {report.stats.deleted} deleted) in {args.pin_dir}")
    if not report.datapath_running:
        print(f"note: no running datapath uses the maps in {args.pin_dir} yet; the collector enforces them "
              "when it starts", file=sys.stderr)


def _list(args) -> int:
    from enforcer.datapath.registry import Registry
    registry = Registry.load(args.pin_dir)
    if not registry.policies:
        print(f"no policies applied to {args.pin_dir}")
    for p in registry.policies.values():
        print(f"{p.id:>10}  {p.mode:<7}  {p.kind} {p.namespace}/{p.name} (revision {p.revision})")
    for namespace in registry.audit_namespaces:
        print(f"namespace {namespace}: audit")
    return 0
