"""The contract's error body ``{"error": {"code", "message", "details"}}`` for every FastAPI service."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorInfo(BaseModel):
    """The error object of the contract."""

    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorInfo


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error body for ``statuses``."""
    return {status: {"model": ErrorBody} for status in statuses}


class ApiError(Exception):
    """An error answered with a status, a stable code and a human message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response in the contract's error shape."""
    return JSONResponse(status_code=status, headers=headers,
                        content={"error": {"code": code, "message": message, "details": details}})


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
                 503: "unavailable"}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, including framework ones, in the contract's shape; never leak a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(part) for part in item["loc"] if part != "body") or "body",
             "message": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        return error_response(422, "invalid_request", "the request has invalid fields", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "error")
        return error_response(error.status_code, code, str(error.detail), None, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(500, "internal_error", "an internal error occurred; it has been logged")
