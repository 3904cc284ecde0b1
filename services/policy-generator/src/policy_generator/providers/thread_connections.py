"""An HTTP transport for the openai SDK in which each calling thread keeps its own keep-alive connection.

The decision threads each make one model call at a time, so a thread never needs more than one connection per
server. The SDK's default transport (httpcore's pool) serves them through a shared pool instead: every request
takes the pool's lock and walks its connections, checking each for expiry. With 128 calls in flight that was
~1.1 ms of the generator's ~7 ms of CPU per decision (docs/benchmarks.md, finding 14); a connection found in a
thread-local and spoken to with ``http.client`` costs a fraction of it, and no thread waits for another's lock.

What it does not do, the provider never asks of it: it reads each answer whole (the provider does not stream),
speaks HTTP/1.1 only, and connects directly. ``direct_to`` tells whether the environment routes a URL through a
proxy (``HTTPS_PROXY`` and friends, which the SDK's own transport honours): then the SDK's transport is kept.
``sdk_http_client`` makes that choice for a client of the SDK.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
import openai

# A connection idle this long is not reused (httpx's default): servers and the middleboxes before them drop idle
# connections after some time, not always with a word.
KEEPALIVE_EXPIRY_SECONDS = 5.0
# Where the SDK sends calls when neither its ``base_url`` nor OPENAI_BASE_URL says otherwise.
SDK_BASE_URL = "https://api.openai.com/v1"


def sdk_http_client(base_url: str | None) -> httpx2.Client | None:
    """The ``http_client`` for an SDK client calling ``base_url``: on thread connections when the calls go straight
    to the server, None (the SDK's own, which knows proxies) when the environment names a proxy for it."""
    if not direct_to(base_url or os.environ.get("OPENAI_BASE_URL") or SDK_BASE_URL):
        return None
    # The SDK's defaults (timeouts, redirects) around the transport, as its own client has them.
    return openai.DefaultHttpxClient(transport=ThreadConnectionTransport())


def direct_to(url: str) -> bool:
    """Whether a request to ``url`` goes straight to its host (no proxy in the environment applies to it)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname or ""))


class ThreadConnectionTransport(httpx2.BaseTransport):
    """One keep-alive HTTP/1.1 connection per thread and server, reused call after call; whole answers only."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None,
                 keepalive_expiry: float = KEEPALIVE_EXPIRY_SECONDS) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._local = threading.local()
        # Every connection made, for ``close``: a thread's own are reached through ``_local`` without a lock.
        self._all: list[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` on the calling thread's connection to its server and read the answer whole."""
        timeouts = request.extensions.get("timeout", {})
        held = self._connection(request.url)
        connection = held.connection
        failure: tuple[type[httpx2.TransportError], type[httpx2.TransportError]] = (httpx2.ConnectTimeout,
                                                                                  httpx2.ConnectError)
        try:
            if connection.sock is None:
                connection.timeout = timeouts.get("connect")
                connection.connect()
            failure = (httpx2.WriteTimeout, httpx2.WriteError)
            connection.sock.settimeout(timeouts.get("write"))
            connection.putrequest(request.method, request.url.raw_path.decode("ascii"), skip_host=True,
                                  skip_accept_encoding=True)
            for name, value in request.headers.raw:
                connection.putheader(name, value)
            connection.endheaders(request.read() or None)
            failure = (httpx2.ReadTimeout, httpx2.ReadError)
            connection.sock.settimeout(timeouts.get("read"))
            answer = connection.getresponse()
            body = answer.read()
            held.idle_since = time.monotonic()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _mapped(error, *failure) from error
        except BaseException:
            connection.close()  # half an exchange: the connection cannot carry another
            raise
        # An answer with "Connection: close" (or HTTP/1.0) has closed the connection: the next call opens another.
        return httpx2.Response(answer.status, headers=answer.getheaders(), stream=httpx2.ByteStream(body),
                               extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode()})

    def close(self) -> None:
        """Close every thread's connections (a thread's next call opens a new one)."""
        with self._all_lock:
            connections = list(self._all)
        for connection in connections:
            connection.close()

    def _connection(self, url: httpx2.URL) -> _Kept:
        """The calling thread's connection to ``url``'s server, closed first if it may no longer carry a call."""
        origin = (url.scheme, url.host, url.port)
        kept: dict[tuple, _Kept] | None = getattr(self._local, "connections", None)
        if kept is None:
            kept = self._local.connections = {}
        now = time.monotonic()
        held = kept.get(origin)
        if held is None:
            held = kept[origin] = _Kept(self._new_connection(url), now)
            with self._all_lock:
                self._all.append(held.connection)
        elif held.connection.sock is not None and (now - held.idle_since >= self._keepalive_expiry
                                                   or _readable(held.connection.sock)):
            # A connection idle for long may have been dropped on the way without a word (a NAT's or a load
            # balancer's idle timeout): the call would wait out its whole timeout. One with something to read while
            # idle was closed by its server (or broke the protocol): the call would fail half-way. Either is
            # replaced now, as httpcore does before reusing one.
            held.connection.close()
        return held

    def _new_connection(self, url: httpx2.URL) -> http.client.HTTPConnection:
        # The port always given: http.client would read one out of an IPv6 address's last group otherwise.
        if url.scheme == "http":
            return http.client.HTTPConnection(url.host, url.port or 80)
        if url.scheme == "https":
            if self._ssl_context is None:
                # Built once, lazily: loading the trusted certificates takes milliseconds. Two threads racing here
                # build two equal contexts, one of which is kept.
                self._ssl_context = httpx2.create_ssl_context()
            return http.client.HTTPSConnection(url.host, url.port or 443, context=self._ssl_context)
        raise httpx2.UnsupportedProtocol(f"no transport for {url.scheme!r} URLs")


@dataclass
class _Kept:
    """A thread's connection to one server, and since when it has been idle (its last answer read)."""

    connection: http.client.HTTPConnection
    idle_since: float


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _mapped(error: OSError | http.client.HTTPException, timeout: type[httpx2.TransportError],
            other: type[httpx2.TransportError]) -> httpx2.TransportError:
    """The httpx2 error, for the step that failed, that the SDK turns into its own (``APITimeoutError``,
    ``APIConnectionError``)."""
    if isinstance(error, TimeoutError):
        return timeout(str(error) or "timed out")
    if isinstance(error, http.client.HTTPException) and other is not httpx2.ConnectError:
        # The server answered with something that is not HTTP, or closed the connection without answering.
        return httpx2.RemoteProtocolError(str(error) or type(error).__name__)
    return other(str(error) or type(error).__name__)
