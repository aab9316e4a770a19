"""Policies from the Kubernetes API: NetworkPolicy objects always, CiliumNetworkPolicy and
CiliumClusterwideNetworkPolicy from their CRDs when those are installed (otherwise cilium-format
policies come from files, and the log says so).

Objects are validated by the same loader as files, so an invalid object is reported with its kind,
namespace/name, field path and reason, and skipped; every valid policy keeps applying.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from typing import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from collector.k8s.informer import Informer, InformerGroup, KubeObject
from enforcer.policy.errors import PolicyError
from enforcer.policy.loader import parse_text
from enforcer.policy.model import Policy

log = logging.getLogger(__name__)

CILIUM_GROUP, CILIUM_VERSION = "cilium.io", "v2"
CILIUM_PLURALS = {"ciliumnetworkpolicies": "CiliumNetworkPolicy",
                  "ciliumclusterwidenetworkpolicies": "CiliumClusterwideNetworkPolicy"}
HTTP_NOT_FOUND = 404


def crd_installed(api_client: client.ApiClient, plural: str, group: str = CILIUM_GROUP) -> bool:
    try:
        client.ApiextensionsV1Api(api_client).read_custom_resource_definition(f"{plural}.{group}")
        return True
    except ApiException as err:
        if err.status == HTTP_NOT_FOUND:
            return False
        raise


def policy_from_object(obj: KubeObject) -> list[Policy]:
    """The policies one API object defines; PolicyError names the object when it is invalid."""
    meta = obj.get("metadata", {})
    clean = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
             "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}}
    clean.update({k: obj[k] for k in ("spec", "specs") if k in obj})
    where = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
    return parse_text(json.dumps(clean), file=f"kubernetes:{obj.get('kind')}/{where}")


class KubernetesPolicySource:
    """Watches policy objects and calls `on_change(policies)` with the full valid set after each change."""

    def __init__(self, api_client: client.ApiClient, on_change: Callable[[list[Policy]], None],
                 watch_timeout_seconds: int = 300) -> None:
        self._on_change = on_change
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], list[Policy]] = {}
        self.invalid: dict[tuple[str, str, str], str] = {}
        networking = client.NetworkingV1Api(api_client)
        self.informers = [Informer("networkpolicies",
                                   networking.list_network_policy_for_all_namespaces,
                                   self._replacer("NetworkPolicy"), self._event,
                                   watch_timeout_seconds)]
        custom = client.CustomObjectsApi(api_client)
        for plural, kind in CILIUM_PLURALS.items():
            try:
                installed = crd_installed(api_client, plural)
            except Exception as err:  # 403, API down: NetworkPolicies still apply; say what is missing
                log.error("cannot tell whether CRD %s.%s is installed (%s): %s policies come from files only",
                          plural, CILIUM_GROUP, getattr(err, "reason", err), kind)
                installed = False
            if not installed:
                log.info("CRD %s.%s is not installed: %s policies come from files only",
                         plural, CILIUM_GROUP, kind)
                continue
            list_fn = functools.partial(custom.list_cluster_custom_object, CILIUM_GROUP,
                                        CILIUM_VERSION, plural)
            self.informers.append(Informer(plural, list_fn, self._replacer(kind), self._event,
                                           watch_timeout_seconds))
        self._informer_group = InformerGroup(self.informers)

    def start(self) -> None:
        self._informer_group.start()

    def wait_synced(self, timeout: float) -> bool:
        return self._informer_group.wait_synced(timeout)

    def stop(self) -> None:
        self._informer_group.stop()

    def policies(self) -> list[Policy]:
        with self._lock:
            return [p for key in sorted(self._objects) for p in self._objects[key]]

    def _replacer(self, kind: str) -> Callable[[list[KubeObject]], None]:
        def replace(items: list[KubeObject]) -> None:
            with self._lock:
                for key in [k for k in self._objects if k[0] == kind]:
                    del self._objects[key]
                for key in [k for k in self.invalid if k[0] == kind]:
                    del self.invalid[key]
                for obj in items:
                    self._store(obj, kind)
            self._notify()
        return replace

    def _event(self, event: str, obj: KubeObject) -> None:
        kind = obj.get("kind") or ""
        with self._lock:
            if event == "DELETED":
                self._objects.pop(_key(obj, kind), None)
                self.invalid.pop(_key(obj, kind), None)
            else:
                self._store(obj, kind)
        self._notify()

    def _store(self, obj: KubeObject, kind: str) -> None:
        obj.setdefault("kind", kind)
        key = _key(obj, kind)
        try:
            self._objects[key] = policy_from_object(obj)
            self.invalid.pop(key, None)
        except PolicyError as err:
            self._objects.pop(key, None)
            self.invalid[key] = str(err)
            log.error("ignoring invalid policy: %s", err)

    def _notify(self) -> None:
        self._on_change(self.policies())


def _key(obj: KubeObject, kind: str) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return kind, meta.get("namespace", ""), meta.get("name", "")


class KubernetesPolicyApplier:
    """`on_change` for KubernetesPolicySource: keeps the datapath's applied policies equal to the API's.

    Policies applied by hand (`flowscope policy apply`) are left alone; only those this applier put in
    are removed when their object goes away."""

    def __init__(self, pin_dir: str, endpoints: Callable[[], list], identity_state: str | None = None,
                 host_ips: tuple[str, ...] = ()) -> None:
        self.pin_dir = pin_dir
        self._endpoints = endpoints
        self._identity_state = identity_state
        self._host_ips = host_ips
        self._applied: set[str] = set()
        self._lock = threading.Lock()
        self.errors = 0

    def __call__(self, policies: list[Policy]) -> None:
        from enforcer.apply import apply_policies, remove_policies
        from enforcer.runtime import load_fqdn_ips

        with self._lock:
            keys = {p.key for p in policies}
            gone = sorted(self._applied - keys)
            try:
                endpoints, fqdn_ips = self._endpoints(), load_fqdn_ips(self.pin_dir)
                if gone:
                    remove_policies(gone, self.pin_dir, endpoints, self._identity_state, self._host_ips, fqdn_ips)
                if policies:
                    apply_policies(policies, self.pin_dir, endpoints, identity_state=self._identity_state,
                                   host_ips=self._host_ips, fqdn_ips=fqdn_ips)
                self._applied = keys
                log.info("policies from Kubernetes: %d applied, %d removed", len(keys), len(gone))
            except Exception as err:  # a full map or bad state must not stop the watch; next change retries
                self.errors += 1
                log.error("applying policies from Kubernetes failed: %s", err)
