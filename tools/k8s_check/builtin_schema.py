"""Validating built-in Kubernetes objects against the OpenAPI schemas of a Kubernetes release, offline.

The schemas are those bundled with the ``kubernetes-validate`` package, in their strict variant (no property a
Kubernetes type does not declare), so ``containerPorts`` where ``containerPort`` is meant fails as it would at the
API server, before anything reaches a cluster. Every error of an object is reported, not only the first.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from tools.k8s_check.object_names import describe, json_path

# The oldest Kubernetes the manifests are meant for: what validates against its schemas is accepted by it and by
# the releases after it (the native preStop `sleep` action they use exists since 1.30).
KUBERNETES_VERSION = "1.33.0"


def is_builtin(obj: dict) -> bool:
    """True for the core API and the ``*.k8s.io`` and unqualified groups (apps, batch, policy, autoscaling…)."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _schema_directory():
    bundled = resources.files(kubernetes_validate).joinpath("kubernetes-json-schema")
    return bundled.joinpath(f"v{KUBERNETES_VERSION}-local-strict")


@cache
def _registry() -> Registry:
    definitions = json.loads(_schema_directory().joinpath("_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    # The package names its files <kind>-<group without domain>-<version>.json: apps/v1 Deployment is
    # deployment-apps-v1.json, networking.k8s.io/v1 NetworkPolicy is networkpolicy-networking-v1.json.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_file = _schema_directory().joinpath(f"{kind.lower()}-{group_version}.json")
    if not schema_file.is_file():
        return None
    return jsonschema.Draft202012Validator(json.loads(schema_file.read_text()), registry=_registry())


def builtin_problems(obj: dict) -> list[str]:
    """What is wrong with a built-in object according to the Kubernetes schemas; empty when it conforms."""
    validator = _validator(obj.get("apiVersion", ""), obj.get("kind", ""))
    if validator is None:
        return [f"{describe(obj)}: Kubernetes {KUBERNETES_VERSION} has no {obj.get('apiVersion')} {obj.get('kind')}"]
    errors = sorted(validator.iter_errors(obj), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{describe(obj)}: {json_path(error.absolute_path)}: {error.message}" for error in errors]


def object_meta_problems(obj: dict) -> list[str]:
    """Problems in the metadata of any object, custom or not, checked as Kubernetes checks ObjectMeta."""
    # A ConfigMap has nothing but metadata that must be set, so its schema judges the metadata alone.
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata") or {}}
    validator = _validator("v1", "ConfigMap")
    if validator is None:
        raise RuntimeError(f"the bundled Kubernetes {KUBERNETES_VERSION} schemas lack v1 ConfigMap")
    return [f"{describe(obj)}: {json_path(error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(probe)]
