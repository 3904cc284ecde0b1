"""A batch's rows and ids as single parameters: statements whose text does not grow with the batch.

A multi-row ``VALUES`` list or an ``IN`` list has a parameter per value, so its text is new for every size of
batch: SQLAlchemy builds and binds thousands of parameters, and psycopg parses the whole text again each time (it
caches only statements of up to 4,096 characters and 50 parameters). At 500 events a batch that was about a fifth
of the store's CPU (docs/benchmarks.md, finding 11). Here the statement has one parameter whatever the batch
holds: the rows as one JSON document that the database reads back into typed columns (``jsonb_to_recordset``),
or the ids as one array. JSON rather than an array per column: psycopg writes arrays in Python, escaping every
element — for JSON values such as a history row's snapshot, dearer than the statement it replaced — while the
whole document is encoded in one call (``json_bytes``, which writes timestamps as ISO 8601 with their offset, read
back exactly).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Table, TableValuedAlias, Text, any_, cast, column, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, Insert, insert

from policy_store.json_encoding import json_bytes

# The column giving each row's place in the batch.
POSITION = "position"


def unnested(table: Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> TableValuedAlias:
    """``rows`` (a value for each of ``names``) as a table with the columns ``names`` typed like ``table``'s, and
    ``POSITION``, to join in a query (``insert_in_order`` inserts them)."""
    # Encoded here rather than by the engine's JSON type: the document is the same whichever engine sends it.
    document = json_bytes([{POSITION: position, **{name: row[name] for name in names}}
                           for position, row in enumerate(rows)]).decode()
    columns = [column(name, table.c[name].type) for name in names]
    return (func.jsonb_to_recordset(cast(literal(document, Text), JSONB))
            .table_valued(*columns, column(POSITION, Integer)).render_derived(with_types=True))


def insert_in_order(table: Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Insert:
    """The ``INSERT`` of ``rows`` into ``table``, in the order given: ids drawn from a sequence follow it."""
    source = unnested(table, names, rows)
    return insert(table).from_select(names, select(*(source.c[name] for name in names))
                                     .order_by(source.c[POSITION]))


def any_of(column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """``column = ANY(array)``: the test of ``column IN values`` with the values as one parameter."""
    return column == any_(literal(list(values), ARRAY(column.type)))
