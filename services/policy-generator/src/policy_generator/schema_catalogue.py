"""The database the assistant queries, as tables, columns and allowed values, to check what a policy names.

A policy that maps a concept to a column that does not exist would make the assistant fail every time it applies
it, so such a policy goes to a reviewer instead of the assistant. The catalogue comes from a DDL file (CREATE
TABLE statements, such as the sample schema) or from a live database inspected with SQLAlchemy; without one,
nothing is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from policyloop_common.policy import PolicyContent
from policyloop_common.text_matching import fold

_CREATE_TABLE = re.compile(r"create\s+table\s+(?:if\s+not\s+exists\s+)?(?:\"?[a-z_][a-z0-9_]*\"?\.)?\"?"
                           r"([a-z_][a-z0-9_]*)\"?\s*\((.*?)\)\s*;", re.IGNORECASE | re.DOTALL)
_CONSTRAINT_START = re.compile(r"^(constraint|primary|foreign|unique|check|exclude)\b", re.IGNORECASE)
_IN_LIST = re.compile(r"check\s*\(\s*\"?([a-z_][a-z0-9_]*)\"?\s+in\s*\(([^)]*)\)", re.IGNORECASE)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_QUALIFIED = re.compile(r"\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b")
_COMPARED_VALUE = re.compile(r"\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*(?:=|!=|<>|in\s*\()\s*'([^']*)'",
                             re.IGNORECASE)
# A name in a negated clause ("there is no column systems.users", "not agencies.location") is what the policy
# says is wrong: expected not to exist.
_NEGATION = re.compile(r"\b(no|not|never|instead of|rather than|khong|khong phai|thay vi)\b[\w\s,]{0,20}$")


@dataclass
class SchemaCatalogue:
    """Columns per table, and the allowed values of columns constrained by ``CHECK (column IN (...))``."""

    columns: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def from_ddl(cls, ddl: str) -> SchemaCatalogue:
        """Parse CREATE TABLE statements; comments are ignored."""
        text = re.sub(r"--[^\n]*", "", ddl)
        catalogue = cls()
        for match in _CREATE_TABLE.finditer(text):
            table, body = match.group(1).lower(), match.group(2)
            columns: set[str] = set()
            for definition in _split_definitions(body):
                if not definition or _CONSTRAINT_START.match(definition):
                    continue
                columns.add(definition.split()[0].strip('"').lower())
            catalogue.columns[table] = columns
            for column, listed in _IN_LIST.findall(body):
                catalogue.values[(table, column.lower())] = {v.replace("''", "'") for v in _QUOTED.findall(listed)}
        if not catalogue.columns:
            raise ValueError("no CREATE TABLE statement found")
        return catalogue

    @classmethod
    def from_database(cls, url: str) -> SchemaCatalogue:
        """Inspect a live database (any SQLAlchemy URL): tables and columns of its default schema."""
        from sqlalchemy import create_engine, inspect

        engine = create_engine(url)
        try:
            inspector = inspect(engine)
            return cls(columns={table.lower(): {column["name"].lower() for column in inspector.get_columns(table)}
                                for table in inspector.get_table_names()})
        finally:
            engine.dispose()

    @classmethod
    def load(cls, source: str) -> SchemaCatalogue:
        """From a database URL (``scheme://``) or a DDL file path."""
        if "://" in source:
            return cls.from_database(source)
        return cls.from_ddl(Path(source).read_text(encoding="utf-8"))

    def problems(self, content: PolicyContent) -> list[str]:
        """What the policy names as right that the schema does not have, as review reasons."""
        found: list[str] = []
        right_side = (content.correct_mapping or "").split("->")[-1]
        for where, text in (("policy.correct_mapping", right_side), ("policy.rule", content.rule)):
            folded = fold(text)
            for match in _QUALIFIED.finditer(folded):
                table, column = match.groups()
                if table not in self.columns or _NEGATION.search(folded[:match.start()]):
                    continue  # outside the catalogue's tables ("e.g.", "1.5"), or named as what is wrong
                if column not in self.columns[table]:
                    found.append(f"unknown column {table}.{column} in {where}")
            for match in _COMPARED_VALUE.finditer(folded):
                table, column, value = match.groups()
                allowed = self.values.get((table, column))
                if allowed is not None and value not in allowed and not _NEGATION.search(folded[:match.start()]):
                    found.append(f"value '{value}' not allowed for {table}.{column} in {where}")
        return list(dict.fromkeys(found))


def _split_definitions(body: str) -> list[str]:
    """The comma-separated definitions of a CREATE TABLE body, commas inside parentheses kept."""
    parts, depth, current = [], 0, []
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts
