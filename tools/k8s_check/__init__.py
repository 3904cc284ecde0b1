"""Offline checks of the Kubernetes manifests under deploy/k8s: render every overlay, validate every object.

``check_tree(path)`` returns the problems found (empty when all is well); ``python -m tools.k8s_check`` prints them.
"""

from tools.k8s_check.tree import check_tree

__all__ = ["check_tree"]
