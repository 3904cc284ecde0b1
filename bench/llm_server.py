"""``python -m bench.llm_server --port N --latency S``: an OpenAI-compatible chat-completions server for benchmarks.

It speaks the same API as the test server of ``tests/support/fake_openai.py`` and, like it, holds each answer for
a fixed latency; unlike it, it answers every request from the request itself, with no script: a DUPLICATE of a
candidate that is close enough, NOT_ACTIONABLE for a comment that names nothing, otherwise a NEW verdict whose
policy names what the comment names. Each distinct feedback is then its own lesson and its own policy, as with a
real model. It runs in a process of its own, so that its CPU is not counted
as the generator's; a bare ASGI application keeps its own cost per request small next to the generator's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import uvicorn

_COMMENT = re.compile(r"^User feedback: (.*)$", re.MULTILINE)
# Identifiers a comment names (snake_case or table.column): what a model's rule would be about.
_IDENTIFIERS = re.compile(r"\b[a-z][a-z0-9]*(?:[._][a-z0-9]+)+\b")
_QUESTION = re.compile(r"^Question: (.*)$", re.MULTILINE)
_CANDIDATES = re.compile(r"<candidates>\n(.*)\n</candidates>", re.DOTALL)
# A candidate this similar is the same lesson told again: a model would call the feedback its duplicate.
DUPLICATE_SIMILARITY = 0.6


def answer_for(user_message: str, verdict: str = "NEW") -> dict:
    """The decision a model would give.

    With ``verdict`` NEW: DUPLICATE of a candidate that scores ``DUPLICATE_SIMILARITY`` or more, NOT_ACTIONABLE
    for a comment that names nothing, otherwise a new policy naming what the comment names. Any other
    ``verdict`` is given as it is, without a policy.
    """
    if verdict != "NEW":
        return {"reasoning": "Nothing to add.", "verdict": verdict, "candidate": None, "policy": None}
    comment = _COMMENT.search(user_message)
    question = _QUESTION.search(user_message)
    listed = _CANDIDATES.search(user_message)
    for candidate in json.loads(listed.group(1)) if listed else []:
        if candidate["similarity"] >= DUPLICATE_SIMILARITY:
            return {"reasoning": "A candidate states this lesson.", "verdict": "DUPLICATE",
                    "candidate": candidate["id"], "policy": None}
    # The rule names what the comment names, in words of its own: two lessons about different columns then
    # differ as a model's rules would, rather than sharing the wording of the users' comments.
    named = list(dict.fromkeys(_IDENTIFIERS.findall(comment.group(1)))) if comment else []
    if not named:
        return {"reasoning": "The feedback names nothing to correct.", "verdict": "NOT_ACTIONABLE",
                "candidate": None, "policy": None}
    subject = ", ".join(named)
    return {
        "reasoning": "No candidate states this lesson.",
        "verdict": "NEW",
        "candidate": None,
        "policy": {
            "category": "schema_mapping", "priority": "high", "rule": f"Read {subject} for this."[:2000],
            "correct_mapping": None, "missing_knowledge": f"Where {subject} is kept."[:2000],
            "examples": [question.group(1).strip()[:500]] if question else [],
            "rationale": "Prevents the mistake the feedback describes.",
        },
    }


class ChatCompletions:
    """The ASGI application: ``POST /v1/chat/completions``, ``GET /stats`` (requests served), ``GET /healthz``."""

    def __init__(self, latency: float, verdict: str = "NEW") -> None:
        self.latency = latency
        self.verdict = verdict
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if scope["method"] == "GET" and path in ("/healthz", "/stats"):
            await _json(send, 200, {"status": "ok", "requests": self.requests, "latency": self.latency})
            return
        if scope["method"] != "POST" or not path.endswith("/chat/completions"):
            await _json(send, 404, {"error": {"message": "not found", "type": "bench", "code": "404"}})
            return
        self.requests += 1
        request = json.loads(body)
        user = next((m["content"] for m in request.get("messages", []) if m.get("role") == "user"), "")
        if self.latency:
            await asyncio.sleep(self.latency)
        await _json(send, 200, {
            "id": f"chatcmpl-bench-{self.requests}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(answer_for(user, self.verdict))}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180},
        })


async def _json(send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each answer is held")
    parser.add_argument("--verdict", choices=["NEW", "NOT_ACTIONABLE"], default="NEW",
                        help="NEW: a policy per feedback; NOT_ACTIONABLE: no policy, so the index does not grow")
    args = parser.parse_args()
    uvicorn.run(ChatCompletions(args.latency, args.verdict), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, lifespan="off", backlog=4096)


if __name__ == "__main__":
    main()
