"""Pod -> owning workload through ownerReferences, without watching ReplicaSets or Jobs.

Kubernetes names a Deployment's ReplicaSet `<deployment>-<pod-template-hash>` and a CronJob's Job
`<cronjob>-<scheduled time in minutes>`; reading those names back is what Cilium and Hubble do too, and
it spares the collector two more watches per node.
"""

from __future__ import annotations

import re
from typing import Any

_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-\d{8,}$")


def owning_workload(pod: dict[str, Any]) -> tuple[str, str]:
    """(name, kind) of the workload that owns `pod`; the pod itself when it has no controller."""
    metadata = pod.get("metadata", {})
    owners = metadata.get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if controller is None:
        return metadata.get("name", ""), "Pod"
    kind, name = controller.get("kind", ""), controller.get("name", "")
    if kind == "ReplicaSet":
        template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
        if template_hash and name.endswith("-" + template_hash):
            return name[: -len(template_hash) - 1], "Deployment"
        return name, "ReplicaSet"
    if kind == "Job":
        match = _CRONJOB_JOB.match(name)
        if match:
            return match.group("cronjob"), "CronJob"
    return name, kind
