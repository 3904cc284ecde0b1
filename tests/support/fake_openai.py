"""An OpenAI-compatible chat-completions server over real HTTP, answering from a script, for tests.

The edge we do not own is faked here, and only here: the openai SDK talks to it exactly as to the real API.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.support.infrastructure import free_port


@dataclass
class Reply:
    """One scripted answer: a JSON decision, raw content, an HTTP error, or any of these after a delay."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    prompt_tokens: int = 120
    completion_tokens: int = 60

    @classmethod
    def decision(cls, **answer: Any) -> Reply:
        """A well-formed structured answer."""
        body = {"reasoning": "scripted", "verdict": "NEW", "candidate": None, "policy": None, **answer}
        return cls(content=json.dumps(body))

    @classmethod
    def error(cls, status: int, **headers: str) -> Reply:
        """An HTTP error as the API sends it."""
        return cls(status=status, headers=headers)


@dataclass
class RecordedRequest:
    """What the client sent."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""  # the body as it came over the wire


class FakeOpenAI:
    """Serves ``/v1/chat/completions`` on 127.0.0.1 from a queue of replies; records every request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.replies: deque[Reply] = deque()
        # /v1/embeddings: a text's vector has a 1 in dimension i for each concept i whose words it contains, so a
        # test decides which texts are "semantically" close.
        self.concepts: list[tuple[str, ...]] = []
        self.embedding_requests: list[list[str]] = []
        self.embeddings_down = False
        self.requests: list[RecordedRequest] = []
        # Requests being answered now, and the most there ever were at once. Handlers run on the server's one
        # event loop, so these change on one thread only; requests overlap while a scripted delay is awaited.
        self.in_flight = 0
        self.most_in_flight = 0
        self._server = uvicorn.Server(uvicorn.Config(self._app(), host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        """What to pass as OPENAI_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue the next answers, in order."""
        self.replies.extend(replies)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await answer(request)
            finally:
                self.in_flight -= 1

        async def answer(request: Request) -> Response:
            raw = await request.body()
            body = json.loads(raw)
            self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body, raw))
            reply = self.replies.popleft() if self.replies else Reply.error(500)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200:
                return JSONResponse(status_code=reply.status, headers=reply.headers,
                                    content={"error": {"message": f"scripted {reply.status}", "type": "test",
                                                       "code": str(reply.status)}})
            return JSONResponse(headers=reply.headers, content={
                "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply.content}}],
                "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                          "total_tokens": reply.prompt_tokens + reply.completion_tokens},
            })

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Response:
            body = await request.json()
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self.embedding_requests.append(texts)
            if self.embeddings_down:
                return JSONResponse(status_code=503, content={"error": {"message": "scripted 503", "type": "test"}})
            return JSONResponse({"object": "list", "model": body.get("model"),
                                 "data": [{"object": "embedding", "index": i, "embedding": self.vector(text)}
                                          for i, text in enumerate(texts)],
                                 "usage": {"prompt_tokens": 8 * len(texts), "total_tokens": 8 * len(texts)}})

        return app

    def vector(self, text: str) -> list[float]:
        """The fake embedding of ``text`` (see ``concepts``)."""
        lowered = text.lower()
        vector = [1.0 if any(word in lowered for word in words) else 0.0 for words in self.concepts]
        # The last dimension gives concept-free texts a direction: alike among themselves, unlike every concept.
        return [*vector, 0.0 if any(vector) else 1.0]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
