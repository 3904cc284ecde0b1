"""A batch's rows and ids as arrays: statements whose text does not grow with the batch.

A multi-row ``VALUES`` list or an ``IN`` list has a parameter per value, so its text is new for every size of
batch: SQLAlchemy builds and binds thousands of parameters, and psycopg parses the whole text again each time (it
caches only statements of up to 4,096 characters and 50 parameters). At 500 events a batch that was about a fifth
of the store's CPU (docs/benchmarks.md, finding 11). With one array per column the statement has a handful of
parameters whatever the batch holds; the database unnests the arrays back into rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, TableValuedAlias, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert


def unnested(table: Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> TableValuedAlias:
    """``rows`` (a value for each of ``names``) as a table with the columns ``names``, typed like ``table``'s:
    ``insert(table).from_select(names, select(*unnested(...).c))``, or joined in a query."""
    return func.unnest(*_arrays(table, names, rows)).table_valued(*names).render_derived()


def insert_in_order(table: Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Insert:
    """The ``INSERT`` of ``rows`` into ``table``, in the order given: ids drawn from a sequence follow it."""
    source = (func.unnest(*_arrays(table, names, rows)).table_valued(*names, with_ordinality="position")
              .render_derived())
    return insert(table).from_select(names, select(*(source.c[name] for name in names)).order_by(source.c.position))


def _arrays(table: Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> list[ColumnElement[Any]]:
    rows = list(rows)
    return [literal([row[name] for row in rows], ARRAY(table.c[name].type)) for name in names]


def any_of(column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """``column = ANY(array)``: the test of ``column IN values`` with the values as one parameter."""
    return column == any_(literal(list(values), ARRAY(column.type)))
