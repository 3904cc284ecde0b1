"""Running a service's FastAPI application as a process: JSON logs, tracing, then uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from policyloop_common.logging import configure_logging
from policyloop_common.tracing import configure_tracing, shutdown_tracing


def serve(app: FastAPI, *, service: str, host: str, port: int, log_level: str = "INFO") -> None:
    """Serve ``app`` until SIGTERM/SIGINT; uvicorn's own logging goes through our JSON lines."""
    configure_logging(service, log_level)
    configure_tracing(service)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        # After the lifespan stopped the consumers, so their last spans are in the queue too.
        shutdown_tracing()
