"""JSON written to the database: the same values as the standard encoder's, timestamps read back exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from policy_store.bulk import insert_in_order, unnested
from policy_store.json_encoding import json_bytes
from policy_store.models import FeedbackRecord

FEEDBACK = FeedbackRecord.__table__


def test_json_bytes_writes_what_the_standard_encoder_writes() -> None:
    value = {"text": "Doanh thu thuần \"quý\" \n tab\t", "numbers": [0, -7, 2.5, 1e-7, 12345678901234], "flag": True,
             "nothing": None, "nested": {"tuple": (1, "a"), "empty": {}}, 3: "an integer key"}
    assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))


def test_json_bytes_falls_back_to_the_standard_encoder_for_what_orjson_refuses() -> None:
    huge = {"count": 2**70, "at": datetime(2026, 11, 27, 10, 0, tzinfo=UTC)}
    assert json.loads(json_bytes(huge)) == {"count": 2**70, "at": "2026-11-27T10:00:00+00:00"}


def test_batch_rows_keep_their_timestamps_and_json_values(sessions) -> None:
    moments = [datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
               datetime(2026, 11, 27, 11, 30, tzinfo=timezone(timedelta(hours=7))),
               datetime(2026, 1, 1, tzinfo=UTC)]
    rows = [dict(feedback_id=f"fb-{index}", status="pending", submitted_at=moment,
                 context={"question": "Doanh thu?", "tables": ["fact_orders"], "limit": 2**70 if index else 10})
            for index, moment in enumerate(moments)]
    with sessions() as session, session.begin():
        session.execute(insert_in_order(FEEDBACK, ("feedback_id", "status", "submitted_at", "context"), rows))
        stored = {row.feedback_id: row for row in session.execute(
            select(FEEDBACK.c.feedback_id, FEEDBACK.c.submitted_at, FEEDBACK.c.context))}
        source = unnested(FEEDBACK, ("feedback_id", "submitted_at"), rows)
        read_back = session.execute(select(source.c.feedback_id, source.c.submitted_at)
                                    .order_by(source.c.position)).all()
    for row in rows:
        assert stored[row["feedback_id"]].submitted_at == row["submitted_at"]
        assert stored[row["feedback_id"]].context == row["context"]
    assert [(feedback_id, at) for feedback_id, at in read_back] == [(row["feedback_id"], row["submitted_at"])
                                                                     for row in rows]


def test_json_columns_written_by_the_engine_use_the_same_encoding(sessions) -> None:
    context = {"question": "Doanh thu?", 7: "integer key", "big": 2**70}
    with sessions() as session, session.begin():
        session.add(FeedbackRecord(feedback_id="fb-orm", status="pending", context=context))
    with sessions() as session:
        assert session.get(FeedbackRecord, "fb-orm").context == {"question": "Doanh thu?", "7": "integer key",
                                                                  "big": 2**70}
