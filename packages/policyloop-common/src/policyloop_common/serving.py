"""Running a service's FastAPI application as a process: JSON logs, then uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from policyloop_common.logging import configure_logging


def serve(app: FastAPI, *, service: str, host: str, port: int, log_level: str = "INFO") -> None:
    """Serve ``app`` until SIGTERM/SIGINT; uvicorn's own logging goes through our JSON lines."""
    configure_logging(service, log_level)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
