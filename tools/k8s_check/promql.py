"""Parsing PromQL offline, to catch a broken alert or panel expression before Prometheus or Grafana would."""

from __future__ import annotations

import re

import promql_parser

# Grafana's variables are not PromQL; each is replaced by a value of the kind it stands for before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def without_grafana_variables(expression: str) -> str:
    """The expression with Grafana's interval variables as durations and dashboard variables as ``.*``."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expression)


def parse_error(expression: str) -> str | None:
    """Why ``expression`` is not valid PromQL, or None when it is."""
    try:
        promql_parser.parse(expression)
    except ValueError as error:
        return str(error)
    return None


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (``foo`` in ``rate(foo[5m])``)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return names
