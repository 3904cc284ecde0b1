"""Checking a kustomize tree: every overlay under ``overlays/`` rendered and put through every check."""

from __future__ import annotations

from pathlib import Path

from tools.k8s_check.alert_rules import alert_problems
from tools.k8s_check.crd_schema import CrdValidator
from tools.k8s_check.crd_sources import load_crds
from tools.k8s_check.errors import ToolUnavailable
from tools.k8s_check.inventory import Inventory
from tools.k8s_check.kustomize import RenderError, render
from tools.k8s_check.object_schemas import schema_problems
from tools.k8s_check.references import reference_problems
from tools.k8s_check.scaling_rules import scaling_problems
from tools.k8s_check.workload_rules import workload_problems


def overlays(tree: Path) -> list[Path]:
    """The directories under ``tree/overlays`` that hold a kustomization."""
    root = tree / "overlays"
    if not root.is_dir():
        return []
    return sorted(directory for directory in root.iterdir()
                  if any((directory / name).is_file() for name in ("kustomization.yaml", "kustomization.yml",
                                                                     "Kustomization")))


def check_objects(objects: list[dict], custom_resources: CrdValidator) -> list[str]:
    """Every check on the objects of one render."""
    inventory = Inventory(objects)
    return (schema_problems(objects, custom_resources) + workload_problems(inventory) + scaling_problems(inventory)
            + alert_problems(inventory) + reference_problems(inventory))


def check_tree(tree: Path | str) -> list[str]:
    """The problems of every overlay of ``tree`` (e.g. deploy/k8s), each prefixed with its overlay; [] when none."""
    tree = Path(tree)
    found = overlays(tree)
    if not found:
        return [f"{tree}: no overlay (a directory with a kustomization.yaml) under {tree / 'overlays'}"]
    try:
        custom_resources = CrdValidator(load_crds())
    except ToolUnavailable as error:
        return [f"the CRD schemas could not be obtained: {error}"]
    problems = []
    for overlay in found:
        label = f"overlays/{overlay.name}"
        try:
            objects = render(overlay)
        except ToolUnavailable as error:
            return [f"kustomize could not be obtained: {error}"]
        except RenderError as error:
            problems.append(f"{label}: kustomize build failed: {error}")
            continue
        if not objects:
            problems.append(f"{label}: renders no object")
        problems += [f"{label}: {problem}" for problem in check_objects(objects, custom_resources)]
    return problems
