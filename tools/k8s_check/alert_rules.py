"""Alerts an on-call engineer can act on: each has a summary, a description and a runbook in docs/operations.md."""

from __future__ import annotations

from pathlib import Path

from tools.k8s_check.inventory import Inventory
from tools.k8s_check.object_names import describe
from tools.k8s_check.promql import parse_error

RUNBOOK_DOCUMENT = "docs/operations.md"


def runbook_anchor(alert: str) -> str:
    """The anchor of an alert's section: its name in lower case, as a Markdown heading of that name gets."""
    return alert.lower()


def alert_problems(inventory: Inventory) -> list[str]:
    """Rules whose expression is not PromQL; alerts without summary, description or runbook_url."""
    problems = []
    for rule_set in inventory.of_kind("PrometheusRule"):
        for group in (rule_set.get("spec") or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record")
                error = parse_error(str(rule.get("expr", "")))
                if error:
                    problems.append(f"{describe(rule_set)}: rule {name}: expr is not valid PromQL: {error}")
                if "alert" not in rule:
                    continue
                where = f"{describe(rule_set)}: alert {rule['alert']}"
                annotations = rule.get("annotations") or {}
                for required in ("summary", "description", "runbook_url"):
                    if not annotations.get(required):
                        problems.append(f"{where} has no {required} annotation")
                expected = f"{RUNBOOK_DOCUMENT}#{runbook_anchor(rule['alert'])}"
                url = annotations.get("runbook_url")
                if url and not url.endswith(expected):
                    problems.append(f"{where}: runbook_url {url} should point to {expected}")
    return problems


def alert_names(inventory: Inventory) -> list[str]:
    """The names of every alert in the render."""
    return [rule["alert"] for rule_set in inventory.of_kind("PrometheusRule")
            for group in (rule_set.get("spec") or {}).get("groups") or []
            for rule in group.get("rules") or [] if "alert" in rule]


def missing_runbook_sections(alerts: list[str], operations_document: Path) -> list[str]:
    """The alerts whose anchor no heading of the operations document produces."""
    anchors = {_heading_anchor(line) for line in operations_document.read_text().splitlines() if line.startswith("#")}
    return [alert for alert in alerts if runbook_anchor(alert) not in anchors]


def _heading_anchor(heading: str) -> str:
    # GitHub's rule: lower case, spaces to hyphens, punctuation other than hyphens and underscores dropped.
    text = heading.lstrip("#").strip().lower().replace(" ", "-")
    return "".join(character for character in text if character.isalnum() or character in "-_")
