"""Middleware counting every HTTP answer by route template and status."""

from __future__ import annotations

import time

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

from policyloop_common.metrics import HTTP_LATENCY, HTTP_REQUESTS


class HttpMetrics(BaseHTTPMiddleware):
    """Records request count and latency per route template (not per raw path, to bound label cardinality)."""

    def __init__(self, app, service: str) -> None:
        super().__init__(app)
        self.service = service

    async def dispatch(self, request: Request, call_next) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(self.service, request.method, template, str(response.status_code)).inc()
        HTTP_LATENCY.labels(self.service, template).observe(time.perf_counter() - started)
        return response
