"""``python -m tools.k8s_check [deploy/k8s]``: exit 0 when every overlay renders and validates, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.k8s_check.tree import check_tree, overlays


def main(argv: list[str] | None = None) -> int:
    """Check the tree named on the command line and print what is wrong."""
    parser = argparse.ArgumentParser(prog="python -m tools.k8s_check", description=__doc__)
    parser.add_argument("tree", nargs="?", default="deploy/k8s", type=Path,
                        help="a kustomize tree with overlays/<name>/ (default: deploy/k8s)")
    arguments = parser.parse_args(argv)
    problems = check_tree(arguments.tree)
    for problem in problems:
        print(f"ERROR {problem}")
    if problems:
        print(f"{arguments.tree}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    names = ", ".join(overlay.name for overlay in overlays(arguments.tree))
    print(f"{arguments.tree}: overlays {names} render and validate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
