"""Find a local pod's host-side device from its IP, the way common veth-based CNIs wire pods:
the host routes each pod IP to the pod's veth (Calico, Cilium, ptp) or learns it as a neighbour on it."""

from __future__ import annotations

from pyroute2 import IPRoute


def device_for_ip(ip: str, ipr: IPRoute | None = None) -> tuple[str, int] | None:
    """(device name, ifindex) the host uses to reach `ip`, or None if it is not directly attached."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        routes = ipr.route("get", dst=ip)
        if not routes:
            return None
        route = routes[0]
        if route.get_attr("RTA_GATEWAY") is not None:
            return None  # reached through a gateway: not a pod on this node
        ifindex = route.get_attr("RTA_OIF")
        links = ipr.get_links(ifindex)
        return (links[0].get_attr("IFLA_IFNAME"), ifindex) if links else None
    except Exception:
        return None
    finally:
        if own:
            ipr.close()
