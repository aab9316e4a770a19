"""NetworkPolicy objects from the (stand-in) API server reach the kernel's policy maps and leave them
when deleted — checked with the kernel's own policy_check (BPF_PROG_TEST_RUN). No Kubernetes API server
can run here: tests/fixtures/kube_api.py speaks its JSON and watch protocol to the real client."""

import dataclasses
import shutil

import pytest

from collector.k8s import load_api_client
from enforcer.datapath import PolicyMaps, forget
from enforcer.datapath.maps import DIR_INGRESS
from enforcer.datapath.registry import Registry
from enforcer.k8s_policies import KubernetesPolicyApplier, KubernetesPolicySource
from tests.enforcer.helpers import ENDPOINTS
from tests.enforcer.kernel_probe import KernelProbe
from tests.enforcer.test_k8s_policies import network_policy
from tests.fixtures.datapath import unique_pin_dir
from lab.testbed.wait import wait_for

pytestmark = pytest.mark.root

BACKEND_IFINDEX = 32


def test_network_policy_objects_are_enforced_and_removed(kube_api, tmp_path):
    pin_dir = unique_pin_dir()
    maps = PolicyMaps.open(pin_dir)
    probe = KernelProbe(maps)
    backend = dataclasses.replace(ENDPOINTS["backend"], ifindex=BACKEND_IFINDEX)
    pods = [ENDPOINTS["frontend"], backend, ENDPOINTS["intruder"]]
    applier = KubernetesPolicyApplier(pin_dir, lambda: pods)
    kube_api.apply(network_policy("backend-from-frontend", "shop", 8080))
    source = KubernetesPolicySource(load_api_client(kube_api.kubeconfig(str(tmp_path / "kubeconfig"))),
                                    applier, watch_timeout_seconds=5)
    source.start()
    try:
        registry = lambda: set(Registry.load(pin_dir).policies)  # noqa: E731
        frontend, intruder = ENDPOINTS["frontend"].ips[0], ENDPOINTS["intruder"].ips[0]
        # The registry names a policy before its maps are written (a drop must find its name), so wait
        # for the verdict itself.
        wait_for(lambda: probe.check(BACKEND_IFINDEX, DIR_INGRESS, intruder, 6, 8080).action == 1, timeout=15,
                 what="the intruder denied")
        assert registry() == {"NetworkPolicy/shop/backend-from-frontend"}
        assert probe.check(BACKEND_IFINDEX, DIR_INGRESS, frontend, 6, 8080).action == 0
        kube_api.delete("NetworkPolicy", "backend-from-frontend", "shop")
        wait_for(lambda: registry() == set(), timeout=15)
        assert probe.check(BACKEND_IFINDEX, DIR_INGRESS, intruder, 6, 8080).action == 0
        assert applier.errors == 0
    finally:
        kube_api.drop_watches()
        source.stop()
        maps.close()
        shutil.rmtree(pin_dir, ignore_errors=True)
        forget(pin_dir)
