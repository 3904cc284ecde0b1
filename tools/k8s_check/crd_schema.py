"""Validating custom resources against the openAPIV3Schema of their CRD, with unknown fields as errors.

The API server prunes fields a structural schema does not declare, silently: a misspelled ``maxReplicaCount``
would be dropped and the default used. Here every object schema is closed unless the CRD says otherwise, so the
typo is reported instead. What Kubernetes extends OpenAPI with is honoured:

- ``x-kubernetes-preserve-unknown-fields: true`` keeps the object open (Strimzi's topic ``config``, for one);
- ``x-kubernetes-int-or-string: true`` accepts an integer or a string;
- ``x-kubernetes-embedded-resource: true`` adds the implicit ``apiVersion``, ``kind`` and ``metadata``;
- ``nullable: true`` accepts null.

CEL rules (``x-kubernetes-validations``) are not evaluated; the rules that matter here are checked by
:mod:`tools.k8s_check.scaling_rules` instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import jsonschema

from tools.k8s_check.object_names import describe, json_path


def strict_schema(node: dict, *, root: bool = False) -> dict:
    """A JSON Schema (draft 4) equivalent of a CRD schema node, closed where Kubernetes would prune."""
    schema = dict(node)
    if "properties" in node:
        schema["properties"] = {name: strict_schema(child) for name, child in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        schema["items"] = strict_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict_schema(node["additionalProperties"])
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            schema[combinator] = [strict_schema(choice) for choice in node[combinator]]
    if isinstance(node.get("not"), dict):
        schema["not"] = strict_schema(node["not"])

    if node.get("x-kubernetes-int-or-string"):
        schema["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"]
    if node.get("x-kubernetes-embedded-resource"):
        schema["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                "metadata": {"type": "object"}, **schema.get("properties", {})}
    if root:
        # The API server validates an object's metadata as ObjectMeta, whatever the CRD says; so do we, elsewhere
        # (see object_schemas.py), and here it is left open.
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}

    is_object = schema.get("type") == "object" or "properties" in schema
    opened = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if is_object and not opened:
        # An object schema that declares no field keeps none: Kubernetes would prune everything below it.
        schema["additionalProperties"] = False
    return schema


class CrdValidator:
    """Validators for every (group, version, kind) the given CRDs serve."""

    def __init__(self, definitions: Iterable[dict]) -> None:
        self._validators: dict[tuple[str, str], jsonschema.Draft4Validator] = {}
        self._served: dict[tuple[str, str], list[str]] = {}
        for definition in definitions:
            spec = definition["spec"]
            kind = spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                api_version = f"{spec['group']}/{version['name']}"
                self._served.setdefault((spec["group"], kind), []).append(version["name"])
                schema = strict_schema(version["schema"]["openAPIV3Schema"], root=True)
                self._validators[(api_version, kind)] = jsonschema.Draft4Validator(schema)

    def knows(self, obj: dict) -> bool:
        """True when a CRD for the object's group and kind is loaded (whatever its version)."""
        group = obj.get("apiVersion", "").rpartition("/")[0]
        return (group, obj.get("kind")) in self._served

    def problems(self, obj: dict) -> list[str]:
        """What is wrong with ``obj`` according to its CRD; empty when it conforms."""
        validator = self._validators.get((obj.get("apiVersion"), obj.get("kind")))
        if validator is None:
            group = obj.get("apiVersion", "").rpartition("/")[0]
            served = self._served.get((group, obj.get("kind")), [])
            return [f"{describe(obj)}: apiVersion {obj.get('apiVersion')} is not served by the CRD "
                    f"(served versions: {', '.join(served) or 'none'})"]
        errors = sorted(validator.iter_errors(obj), key=lambda error: list(map(str, error.absolute_path)))
        return [f"{describe(obj)}: {json_path(error.absolute_path)}: {error.message}" for error in errors]
