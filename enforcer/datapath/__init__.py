"""The enforcer's side of the datapath: the policy maps of bpf/policy.h and what is written into them."""

from enforcer.datapath.maps import DEFAULT_PIN_DIR, PolicyMaps, default_pin_dir

__all__ = ["DEFAULT_PIN_DIR", "PolicyMaps", "default_pin_dir"]
