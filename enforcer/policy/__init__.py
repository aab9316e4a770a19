"""Network policies: the model, and loading Kubernetes and Cilium policies from YAML."""

from enforcer.policy.errors import PolicyError
from enforcer.policy.loader import load_policies, parse_text
from enforcer.policy.model import (EGRESS, INGRESS, CidrPeer, DnsRule, EndpointSelector, EntityPeer, FqdnPeer,
                                   HttpRule, PeerInfo, Policy, PortSpec, Rule)
from enforcer.policy.selectors import LabelSelector, Requirement

__all__ = [
    "EGRESS", "INGRESS", "CidrPeer", "DnsRule", "EndpointSelector", "EntityPeer", "FqdnPeer", "HttpRule",
    "LabelSelector", "PeerInfo", "Policy", "PolicyError", "PortSpec", "Requirement", "Rule", "load_policies",
    "parse_text",
]
