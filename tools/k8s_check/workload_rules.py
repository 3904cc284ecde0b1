"""Hardening every pod must have: probes, resource limits, a non-root user, a read-only root filesystem."""

from __future__ import annotations

from tools.k8s_check.inventory import LONG_RUNNING_KINDS, Inventory, pod_spec
from tools.k8s_check.object_names import describe


def workload_problems(inventory: Inventory) -> list[str]:
    """What each Deployment, StatefulSet, DaemonSet and Job lacks."""
    problems = []
    for workload in inventory.workloads():
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext") or {}
        long_running = workload.get("kind") in LONG_RUNNING_KINDS
        for container in spec.get("containers") or []:
            where = f"{describe(workload)}: container {container.get('name')}"
            problems += [f"{where} {problem}" for problem in _container_problems(container, pod_security,
                                                                                 long_running=long_running)]
        for container in spec.get("initContainers") or []:
            where = f"{describe(workload)}: init container {container.get('name')}"
            problems += [f"{where} {problem}" for problem in _container_problems(container, pod_security,
                                                                                 long_running=False)]
    return problems


def _container_problems(container: dict, pod_security: dict, *, long_running: bool) -> list[str]:
    problems = []
    if long_running:
        if not container.get("livenessProbe"):
            problems.append("has no livenessProbe: a hung process would never be restarted")
        if not container.get("readinessProbe"):
            problems.append("has no readinessProbe: it would get traffic and count as available before it can serve")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        missing = [name for name in ("cpu", "memory") if name not in (resources.get(kind) or {})]
        if missing:
            problems.append(f"has no resources.{kind} for {' and '.join(missing)}: "
                            + ("the scheduler and the autoscalers cannot account for it" if kind == "requests"
                               else "one runaway process could starve its node"))
    security = container.get("securityContext") or {}
    run_as_non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    if run_as_non_root is not True:
        problems.append("does not set runAsNonRoot: true")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("does not set readOnlyRootFilesystem: true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("does not set allowPrivilegeEscalation: false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append("does not drop ALL capabilities")
    return problems
