"""The objects of one rendered overlay, looked up by kind, namespace and name, and what their pods look like."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Kinds whose pods run for good (and so need probes), and kinds whose pods run to completion.
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
RUN_TO_COMPLETION_KINDS = ("Job",)


@dataclass(frozen=True)
class Inventory:
    """One overlay's objects."""

    objects: list[dict]

    def of_kind(self, kind: str) -> Iterator[dict]:
        """The objects of ``kind``, in render order."""
        return (obj for obj in self.objects if obj.get("kind") == kind)

    def find(self, kind: str, namespace: str | None, name: str) -> dict | None:
        """The object of that kind, namespace and name, if rendered."""
        for obj in self.of_kind(kind):
            metadata = obj.get("metadata") or {}
            if metadata.get("name") == name and metadata.get("namespace") == namespace:
                return obj
        return None

    def workloads(self) -> Iterator[dict]:
        """Every object that has a pod template."""
        return (obj for obj in self.objects if obj.get("kind") in LONG_RUNNING_KINDS + RUN_TO_COMPLETION_KINDS)


def namespace_of(obj: dict) -> str | None:
    """The object's namespace as rendered."""
    return (obj.get("metadata") or {}).get("namespace")


def name_of(obj: dict) -> str:
    """The object's name as rendered."""
    return (obj.get("metadata") or {}).get("name", "")


def pod_template(workload: dict) -> dict:
    """The pod template of a Deployment, StatefulSet, DaemonSet or Job."""
    return (workload.get("spec") or {}).get("template") or {}


def pod_labels(workload: dict) -> dict[str, str]:
    """The labels its pods get."""
    return (pod_template(workload).get("metadata") or {}).get("labels") or {}


def pod_spec(workload: dict) -> dict:
    """The spec of its pods."""
    return pod_template(workload).get("spec") or {}


def selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """Whether a label selector (``matchLabels`` and ``matchExpressions``) selects ``labels``."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def container_environment(workload: dict, inventory: Inventory, container_name: str | None = None) -> dict[str, str]:
    """The environment a container gets from literal ``env`` values and ``envFrom`` ConfigMaps of the render.

    Values from Secrets and the downward API are not known before the pod runs and are left out. Without
    ``container_name``, the first container (the one KEDA reads by default).
    """
    containers = pod_spec(workload).get("containers") or []
    container = next((c for c in containers if c.get("name") == container_name), None) if container_name else None
    container = container or (containers[0] if containers else {})
    environment: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        reference = source.get("configMapRef")
        if reference:
            config_map = inventory.find("ConfigMap", namespace_of(workload), reference.get("name", ""))
            prefix = source.get("prefix", "")
            for key, value in ((config_map or {}).get("data") or {}).items():
                environment[prefix + key] = str(value)
    for variable in container.get("env") or []:
        if "value" in variable:
            environment[variable["name"]] = str(variable["value"])
    return environment
