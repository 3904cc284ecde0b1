"""Writes ``schemas/``: one JSON Schema per event type and version, and the AsyncAPI document of the topics.

Run ``make schemas`` after changing an event model; a test fails while the committed files differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from policyloop_common.cloudevents import SPEC_VERSION
from policyloop_common.events import (
    EVENT_TYPES,
    FEEDBACK_SUBMITTED_TOPIC,
    POLICY_DECISIONS_TOPIC,
    POLICY_REVIEWS_TOPIC,
    POLICY_USAGE_TOPIC,
    dead_letter_topic,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"


def event_schema(ce_type: str) -> dict:
    """The JSON Schema of one event's value."""
    model = EVENT_TYPES[ce_type]
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://policyloop.dev/schemas/events/{ce_type}.v{model.schema_version}.json"
    return schema


def schema_files() -> dict[Path, str]:
    """Every file of ``schemas/`` with the content it should have."""
    files = {}
    for ce_type, model in EVENT_TYPES.items():
        path = SCHEMAS / "events" / f"{ce_type}.v{model.schema_version}.json"
        files[path] = _dump(event_schema(ce_type))
    files[SCHEMAS / "asyncapi.json"] = _dump(asyncapi())
    return files


def asyncapi() -> dict:
    """An AsyncAPI 3.0 document of the topics, their messages and the CloudEvents headers."""
    headers = {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
        "properties": {
            "ce_specversion": {"const": SPEC_VERSION},
            "ce_id": {"type": "string", "description": "unique event id; consumers are idempotent by it"},
            "ce_source": {"type": "string", "description": "the producing service, e.g. /policyloop/feedback-api"},
            "ce_type": {"type": "string", "description": "the event type, the name of the message"},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschemaversion": {"type": "string", "description": "version of the value's schema (default 1)"},
            "ce_traceparent": {"type": "string", "description": "trace id carried from the HTTP request"},
            "content-type": {"const": "application/json"},
        },
    }
    messages = {
        ce_type: {
            "name": ce_type,
            "contentType": "application/json",
            "headers": headers,
            "payload": {"$ref": f"events/{ce_type}.v{model.schema_version}.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": _key_doc(ce_type)}}},
        }
        for ce_type, model in EVENT_TYPES.items()
    }
    topics = {
        FEEDBACK_SUBMITTED_TOPIC: ["FeedbackSubmitted", "FeedbackReanalysisRequested"],
        POLICY_DECISIONS_TOPIC: ["PolicyGenerated", "PolicySkipped", "PolicyGenerationFailed"],
        POLICY_REVIEWS_TOPIC: ["PolicyReviewed", "PolicyEdited", "PolicyImported"],
        POLICY_USAGE_TOPIC: ["PolicyUsed"],
    }
    channels = {}
    for topic, types in topics.items():
        channels[topic] = {"address": topic,
                           "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in types}}
        channels[dead_letter_topic(topic)] = {
            "address": dead_letter_topic(topic),
            "description": "records of the topic that could not be processed, unchanged, with dlq_reason, "
                           "dlq_error, dlq_original_topic, dlq_original_partition and dlq_original_offset headers",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "policyloop events", "version": "1.0.0",
                 "description": "CloudEvents 1.0 in Kafka binary content mode: attributes as headers, "
                                "the JSON value as data."},
        "channels": channels,
        "operations": {
            "publishFeedback": {"action": "send", "channel": {"$ref": f"#/channels/{FEEDBACK_SUBMITTED_TOPIC}"}},
            "publishDecisions": {"action": "send", "channel": {"$ref": f"#/channels/{POLICY_DECISIONS_TOPIC}"}},
            "publishReviews": {"action": "send", "channel": {"$ref": f"#/channels/{POLICY_REVIEWS_TOPIC}"}},
            "publishUsage": {"action": "send", "channel": {"$ref": f"#/channels/{POLICY_USAGE_TOPIC}"}},
        },
        "components": {"messages": messages},
    }


def _key_doc(ce_type: str) -> str:
    if ce_type == "PolicyUsed":
        return "conversation_id/message_id of the answer (UTF-8)"
    on_policy = ("PolicyReviewed", "PolicyEdited", "PolicyImported")
    return "the policy_id (UTF-8)" if ce_type in on_policy else "the feedback_id (UTF-8)"


def _dump(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    """Write the files; with ``--check``, only report drift and exit 1 when there is any."""
    check = "--check" in sys.argv
    drift = []
    for path, content in schema_files().items():
        current = path.read_text() if path.exists() else None
        if current != content:
            drift.append(path.relative_to(ROOT))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
    if check and drift:
        print("schemas differ from the models (run `make schemas`): " + ", ".join(map(str, drift)))
        return 1
    print("schemas up to date" if not drift else f"wrote {len(drift)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
