"""The enforcer's side of the datapath: the policy maps of bpf/policy.h, what is written into them, and
the applied policies' names for the collector (PolicyNames)."""

from enforcer.datapath.maps import DEFAULT_PIN_DIR, PolicyMaps, default_pin_dir
from enforcer.datapath.registry import PolicyNames, Registry, forget, registry_path

__all__ = ["DEFAULT_PIN_DIR", "PolicyMaps", "PolicyNames", "Registry", "default_pin_dir", "forget", "registry_path"]
