"""Objects that point at each other must meet: selectors select pods, named ports and ConfigMaps exist.

Each of these mistakes renders and applies without complaint and fails only at run time: a Service without
endpoints, a ServiceMonitor that scrapes nothing, a PodDisruptionBudget that protects nothing.
"""

from __future__ import annotations

from tools.k8s_check.inventory import Inventory, namespace_of, pod_labels, pod_spec, selector_matches
from tools.k8s_check.object_names import describe


def reference_problems(inventory: Inventory) -> list[str]:
    """Broken links between the objects of one render."""
    return (_service_problems(inventory) + _service_monitor_problems(inventory) + _selector_problems(inventory)
            + _pod_reference_problems(inventory))


def _pods_selected(inventory: Inventory, namespace: str | None, selector: dict) -> list[dict]:
    return [workload for workload in inventory.workloads()
            if namespace_of(workload) == namespace and selector_matches(selector, pod_labels(workload))]


def _container_port_names(workload: dict) -> set[str]:
    return {port.get("name") for container in pod_spec(workload).get("containers") or []
            for port in container.get("ports") or [] if port.get("name")}


def _service_problems(inventory: Inventory) -> list[str]:
    problems = []
    for service in inventory.of_kind("Service"):
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            continue
        selected = _pods_selected(inventory, namespace_of(service), {"matchLabels": selector})
        if not selected:
            problems.append(f"{describe(service)}: its selector {selector} matches no pod in the render")
            continue
        for port in (service.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in _container_port_names(pod) for pod in selected):
                problems.append(f"{describe(service)}: targetPort {target!r} is not a named port of the pods it "
                                "selects")
    return problems


def _service_monitor_problems(inventory: Inventory) -> list[str]:
    problems = []
    for monitor in inventory.of_kind("ServiceMonitor"):
        spec = monitor.get("spec") or {}
        namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [namespace_of(monitor)]
        services = [service for service in inventory.of_kind("Service")
                    if namespace_of(service) in namespaces
                    and selector_matches(spec.get("selector"), (service.get("metadata") or {}).get("labels") or {})]
        if not services:
            problems.append(f"{describe(monitor)}: its selector matches no Service: nothing would be scraped")
            continue
        port_names = {port.get("name") for service in services for port in (service.get("spec") or {}).get("ports")
                      or []}
        for endpoint in spec.get("endpoints") or []:
            if endpoint.get("port") and endpoint["port"] not in port_names:
                problems.append(f"{describe(monitor)}: endpoint port {endpoint['port']!r} is not a port name of "
                                f"the Services it selects ({', '.join(sorted(filter(None, port_names)))})")
    return problems


def _selector_problems(inventory: Inventory) -> list[str]:
    problems = []
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in inventory.of_kind(kind):
            spec = obj.get("spec") or {}
            selector = spec.get("selector") if kind == "PodDisruptionBudget" else spec.get("podSelector")
            if not selector:
                # An empty podSelector means every pod of the namespace (the default deny), on purpose.
                continue
            if not _pods_selected(inventory, namespace_of(obj), selector):
                problems.append(f"{describe(obj)}: its selector matches no pod in the render")
    return problems


def _pod_reference_problems(inventory: Inventory) -> list[str]:
    problems = []
    for workload in inventory.workloads():
        spec = pod_spec(workload)
        account = spec.get("serviceAccountName")
        if account and inventory.find("ServiceAccount", namespace_of(workload), account) is None:
            problems.append(f"{describe(workload)}: ServiceAccount {account} is not in the render")
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for source in container.get("envFrom") or []:
                reference = source.get("configMapRef")
                if reference and not reference.get("optional") and inventory.find(
                        "ConfigMap", namespace_of(workload), reference.get("name", "")) is None:
                    problems.append(f"{describe(workload)}: container {container.get('name')} reads ConfigMap "
                                    f"{reference.get('name')}, which is not in the render")
    return problems


