"""Middleware counting every HTTP answer by route template and status."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from policyloop_common.metrics import HTTP_LATENCY, HTTP_REQUESTS


class HttpMetrics:
    """Records request count and latency per route template (not per raw path, to bound label cardinality).

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` runs the rest of the application in a task of its own and passes
    every answer through a stream, ~10 % of the samples of a request for policies (docs/benchmarks.md, finding 13).
    An exception that escapes the application is counted as the 500 it becomes further out.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # The router has put the matched route in the scope by now.
            template = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, template).observe(time.perf_counter() - started)
