"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for load that must not be limited by its sender.

httpx's async client reaches only a few hundred requests per second on this machine, less than the arrival
rates measured here; this one reaches thousands (``bench.ingest`` and ``bench.end_to_end`` show how far). It
speaks just what the benchmarks send: requests with a Content-Length body, responses with a Content-Length.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

# uvicorn closes a keep-alive connection idle for 5 s; one idle this long is closed here rather than reused.
IDLE_SECONDS = 2.0


@dataclass(frozen=True)
class Response:
    """Status and body of one answer."""

    status: int
    body: bytes

    def json(self) -> object:
        """The body as JSON."""
        return json.loads(self.body)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = time.monotonic()

    async def exchange(self, request: bytes) -> Response:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return Response(status, await self.reader.readexactly(length) if length else b"")

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """Keep-alive connections to one host, opened as concurrency requires and reused afterwards."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._idle: list[_Connection] = []

    @classmethod
    def for_url(cls, url: str, headers: dict[str, str] | None = None) -> HttpPool:
        """A pool for ``http://host:port``."""
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        return cls(host, int(port or 80), headers)

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                      content_type: str = "application/json") -> Response:
        """Send one request on an idle connection (or a new one) and read its answer."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._headers}{extra}"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        request = head.encode() + body
        connection = self._reusable()
        if connection is not None:
            try:
                return self._keep(connection, await connection.exchange(request))
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                connection.close()
                if isinstance(error, asyncio.IncompleteReadError) and error.partial:
                    raise
                # Closed by the server while idle, before it read anything: the request was not handled.
        connection = _Connection(*await asyncio.open_connection(self.host, self.port))
        try:
            return self._keep(connection, await connection.exchange(request))
        except BaseException:
            connection.close()
            raise

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.used < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def _keep(self, connection: _Connection, response: Response) -> Response:
        connection.used = time.monotonic()
        self._idle.append(connection)
        return response

    async def post_json(self, path: str, payload: object, headers: dict[str, str] | None = None) -> Response:
        """POST ``payload`` as JSON."""
        return await self.request("POST", path, json.dumps(payload).encode(), headers)

    def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()
