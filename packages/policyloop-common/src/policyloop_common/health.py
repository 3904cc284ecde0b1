"""``/healthz`` (the process is alive) and ``/readyz`` (its dependencies answer) for every service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], bool]


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """Routes that report liveness, and readiness as the result of each named check."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await asyncio.to_thread(check))
            except Exception:  # a failing check means "not ready", whatever it raised
                results[name] = False
        ready = all(results.values())
        return JSONResponse(status_code=200 if ready else 503,
                            content={"status": "ready" if ready else "not_ready", "checks": results})

    return router
