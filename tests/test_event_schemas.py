"""The committed ``schemas/`` must be what the event models generate."""

from __future__ import annotations

import json

from policyloop_common.events import EVENT_TYPES
from tools.event_schemas import asyncapi, schema_files


def test_committed_schemas_match_the_models() -> None:
    drift = [str(path) for path, content in schema_files().items()
             if not path.exists() or path.read_text() != content]
    assert drift == [], f"run `make schemas`; these differ from the models: {drift}"


def test_every_event_type_has_a_message_in_the_asyncapi_document() -> None:
    document = asyncapi()
    assert set(document["components"]["messages"]) == set(EVENT_TYPES)
    assert "feedback.submitted.v1.dlq" in document["channels"]


def test_feedback_submitted_schema_requires_the_contract_fields() -> None:
    schema = json.loads(next(content for path, content in schema_files().items()
                             if path.name == "FeedbackSubmitted.v1.json"))
    for field in ("feedback_id", "user_id", "conversation_id", "message_id", "rating", "context", "submitted_at"):
        assert field in schema["required"]
