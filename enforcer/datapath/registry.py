"""The applied policies of one datapath, stored next to its pinned maps (bpffs holds only BPF objects, so
the file lives under /run/flowscope/enforcer, named after the pin dir): their ids, modes and documents.
`policy apply`/`remove` edit it; the collector reads it through PolicyNames to name the policy of a drop."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

from enforcer.policy.loader import parse_text
from enforcer.policy.model import Policy
from proto.flow import flow_pb2

STATE_DIR = "/run/flowscope/enforcer"
STATE_DIR_ENV = "FLOWSCOPE_ENFORCER_STATE_DIR"
ENFORCE = "enforce"
AUDIT = "audit"


def registry_path(pin_dir: str) -> pathlib.Path:
    base = os.environ.get(STATE_DIR_ENV, STATE_DIR)
    return pathlib.Path(base) / (pin_dir.strip("/").replace("/", "_") + ".json")


def forget(pin_dir: str) -> None:
    """Remove the files kept for a pin dir (its applied policies and map contents), e.g. with the pin dir."""
    path = registry_path(pin_dir)
    for f in (path, path.with_suffix(".maps.json"), path.with_suffix(".fqdn.json")):
        f.unlink(missing_ok=True)


@dataclass
class AppliedPolicy:
    id: int
    kind: str
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    mode: str = ENFORCE
    revision: int = 1
    document: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def to_flow_policy(self) -> flow_pb2.Policy:
        return flow_pb2.Policy(name=self.name, namespace=self.namespace, kind=self.kind, revision=self.revision,
                               labels=[f"k8s:{k}={v}" for k, v in sorted(self.labels.items())])


@dataclass
class Registry:
    path: pathlib.Path
    policies: dict[str, AppliedPolicy] = field(default_factory=dict)
    audit_namespaces: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, pin_dir: str) -> "Registry":
        path = registry_path(pin_dir)
        reg = cls(path)
        if path.exists():
            data = json.loads(path.read_text())
            reg.policies = {p.key: p for p in (AppliedPolicy(**entry) for entry in data.get("policies", []))}
            reg.audit_namespaces = list(data.get("audit_namespaces", []))
        return reg

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"policies": [asdict(p) for p in self.policies.values()],
                                   "audit_namespaces": self.audit_namespaces}, indent=1))
        tmp.replace(self.path)

    def put(self, policy: Policy, mode: str) -> AppliedPolicy:
        """Add or replace a policy (by kind/namespace/name); its id stays, its revision moves on a change."""
        known = self.policies.get(policy.key)
        if known is not None:
            if known.document != policy.raw or known.mode != mode:
                known.revision += 1
                known.document, known.mode, known.labels = policy.raw, mode, dict(policy.labels)
            return known
        used = {p.id for p in self.policies.values()}
        candidate = _hash_id(policy.key)
        while candidate in used:
            candidate = candidate % 0x7FFFFFFF + 1
        applied = AppliedPolicy(candidate, policy.kind, policy.namespace, policy.name, dict(policy.labels), mode,
                                1, policy.raw)
        self.policies[policy.key] = applied
        return applied

    def remove(self, key: str) -> bool:
        return self.policies.pop(key, None) is not None

    def parsed(self, known: Iterable[Policy] = ()) -> list[Policy]:
        """The applied policies as model objects: `known` ones as given, the others re-read from their
        stored documents."""
        import yaml
        by_key: dict[str, list[Policy]] = {}
        for policy in known:
            if policy.key in self.policies:
                by_key.setdefault(policy.key, []).append(policy)
        out: list[Policy] = []
        for key, applied in self.policies.items():
            out.extend(by_key.get(key) or parse_text(yaml.safe_dump(applied.document), f"{self.path}:{key}"))
        return out

    def ids(self) -> dict[str, int]:
        return {k: p.id for k, p in self.policies.items()}

    def audit_keys(self) -> frozenset[str]:
        return frozenset(k for k, p in self.policies.items() if p.mode == AUDIT)


def _hash_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 0x7FFFFFFF + 1


class PolicyNames:
    """policy id -> flow_pb2.Policy for the collector's decoder (collector.datapath.decoder.PolicyNames),
    re-reading the registry when `policy apply`/`remove` changed it: checked at most once a second, and
    at once for an id it does not know (the first drop of a just-applied policy must find its name)."""

    def __init__(self, pin_dir: str, clock=time.monotonic) -> None:
        self.path = registry_path(pin_dir)
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._mtime = None
        self._by_id: dict[int, flow_pb2.Policy] = {}

    def policy_for_id(self, policy_id: int) -> flow_pb2.Policy | None:
        now = self._clock()
        if now - self._checked >= 1.0 or policy_id not in self._by_id:
            with self._lock:
                self._checked = now
                self._reload()
        return self._by_id.get(policy_id)

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._by_id, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return   # being replaced: keep the previous names, try again later
        self._by_id = {e["id"]: AppliedPolicy(**e).to_flow_policy() for e in data.get("policies", [])}
        self._mtime = mtime
