"""Every rendered object checked against a schema: Kubernetes' own for built-in kinds, the CRD's for the others.

An object of a kind with no known schema is a problem too: an unchecked kind is where typos would hide.
"""

from __future__ import annotations

from tools.k8s_check.builtin_schema import builtin_problems, is_builtin, object_meta_problems
from tools.k8s_check.crd_schema import CrdValidator
from tools.k8s_check.object_names import describe


def schema_problems(objects: list[dict], custom_resources: CrdValidator) -> list[str]:
    """Schema violations of ``objects``; empty when every one conforms."""
    problems = []
    for obj in objects:
        if is_builtin(obj):
            problems += builtin_problems(obj)
        elif custom_resources.knows(obj):
            problems += object_meta_problems(obj)
            problems += custom_resources.problems(obj)
        else:
            problems.append(f"{describe(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')}; add its CRD "
                            "to tools/k8s_check/crd_sources.py")
    return problems
