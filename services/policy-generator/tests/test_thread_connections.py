"""The provider's HTTP transport against a real HTTP server: connections kept per thread, replaced when the server
drops them, answers decoded, failures turned into the SDK's errors."""

from __future__ import annotations

import datetime
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from policy_generator.providers.openai_provider import OpenAIProvider
from policy_generator.providers.thread_connections import ThreadConnectionTransport, direct_to, sdk_http_client
from tests.support.polling import eventually

ANSWER = {"answer": "ok"}


class Behaviour:
    """What the server does after its next answers; counts the connections it was given and saw end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened = 0
        self.ended = 0
        self.mode = "keep-alive"
        self.dropped = threading.Event()
        self.accept_encoding: list[str] = []
        self.base_url = ""


class Handler(BaseHTTPRequestHandler):
    """Echoes each POSTed body in a JSON answer, keeping the connection open or not as ``behaviour.mode`` says."""

    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def setup(self) -> None:
        super().setup()
        with self.behaviour.lock:
            self.behaviour.opened += 1

    def finish(self) -> None:
        super().finish()
        with self.behaviour.lock:
            self.behaviour.ended += 1

    def do_POST(self) -> None:
        received = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.behaviour.mode
        self.behaviour.accept_encoding.append(self.headers.get("Accept-Encoding", ""))
        if mode == "silent":
            threading.Event().wait(2.0)  # longer than the client waits
            return
        body = json.dumps({**ANSWER, "echo": received}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if mode == "gzip":
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        if mode == "connection-close":
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if mode == "drop":
            # A server closing an idle keep-alive connection: no "Connection: close" was announced.
            self.close_connection = True
            self.request.shutdown(socket.SHUT_RDWR)
            self.behaviour.dropped.set()

    def log_message(self, *_: object) -> None:
        """Not logged: the tests read the counts."""


@pytest.fixture
def behaviour() -> Iterator[Behaviour]:
    yield from _serving()


def _serving(tls: ssl.SSLContext | None = None) -> Iterator[Behaviour]:
    state = Behaviour()
    handler = type("BoundHandler", (Handler,), {"behaviour": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    # A certificate names a host, not an address.
    origin = f"https://localhost:{server.server_address[1]}" if tls else f"http://127.0.0.1:{server.server_address[1]}"
    state.base_url = f"{origin}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        serving.join()


def client(base_url: str, transport: ThreadConnectionTransport, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=base_url, timeout=timeout, max_retries=0,
                         http_client=openai.DefaultHttpxClient(transport=transport))


def call(sdk: openai.OpenAI, number: int = 0) -> dict:
    return json.loads(sdk.post("/chat/completions", cast_to=bytes, body={"n": number}))


def test_a_thread_keeps_its_connection_and_each_thread_has_its_own(behaviour: Behaviour) -> None:
    transport = ThreadConnectionTransport()
    sdk = client(behaviour.base_url, transport)
    assert [call(sdk, number)["echo"] for number in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert behaviour.opened == 1
    answers: list[dict] = []
    others = [threading.Thread(target=lambda n=n: answers.append(call(sdk, n))) for n in (10, 11)]
    for other in others:
        other.start()
    for other in others:
        other.join()
    assert sorted(answer["echo"]["n"] for answer in answers) == [10, 11]
    assert behaviour.opened == 3
    call(sdk)
    assert behaviour.opened == 3


def test_a_connection_the_server_dropped_is_replaced_before_the_next_call(behaviour: Behaviour) -> None:
    sdk = client(behaviour.base_url, ThreadConnectionTransport())
    behaviour.mode = "drop"
    assert call(sdk, 1)["echo"] == {"n": 1}
    assert behaviour.dropped.wait(5)
    behaviour.mode = "keep-alive"
    # Without the check, this call would go out on the dropped connection and fail (the SDK retries nothing here).
    assert call(sdk, 2)["echo"] == {"n": 2}
    assert behaviour.opened == 2


def test_a_connection_idle_past_the_expiry_is_replaced(behaviour: Behaviour) -> None:
    # Expiry 0: every connection has been idle long enough by its next call. Nothing is dropped on the way here,
    # so without the expiry the three calls would share one connection.
    sdk = client(behaviour.base_url, ThreadConnectionTransport(keepalive_expiry=0.0))
    assert [call(sdk, number)["echo"] for number in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert behaviour.opened == 3
    eventually(lambda: behaviour.ended == 2, timeout=10, interval=0.02, what="the replaced connections closed")


def test_an_answer_closing_the_connection_is_followed_by_a_new_one(behaviour: Behaviour) -> None:
    sdk = client(behaviour.base_url, ThreadConnectionTransport())
    behaviour.mode = "connection-close"
    assert call(sdk, 1)["answer"] == "ok"
    behaviour.mode = "keep-alive"
    assert call(sdk, 2)["echo"] == {"n": 2}
    assert behaviour.opened == 2


def test_a_compressed_answer_is_read_decompressed(behaviour: Behaviour) -> None:
    behaviour.mode = "gzip"
    assert call(client(behaviour.base_url, ThreadConnectionTransport()), 7) == {**ANSWER, "echo": {"n": 7}}
    # The client's own Accept-Encoding, once: the transport adds none of its own.
    assert behaviour.accept_encoding[-1].startswith("gzip")


def test_network_failures_become_the_sdks_errors(behaviour: Behaviour) -> None:
    transport = ThreadConnectionTransport()
    behaviour.mode = "silent"
    with pytest.raises(openai.APITimeoutError):
        call(client(behaviour.base_url, transport, timeout=0.3))
    # Nothing listens on a port just released.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(openai.APIConnectionError) as refused:
        call(client(f"http://127.0.0.1:{closed_port}/v1", transport))
    assert not isinstance(refused.value, openai.APITimeoutError)
    # A server that takes the request and closes without an answer.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        hang_up = threading.Thread(target=lambda: _read_and_close(mute))
        hang_up.start()
        with pytest.raises(openai.APIConnectionError):
            call(client(f"http://127.0.0.1:{mute.getsockname()[1]}/v1", transport))
        hang_up.join()
    # After the failures the transport still serves.
    behaviour.mode = "keep-alive"
    assert call(client(behaviour.base_url, transport), 3)["echo"] == {"n": 3}


def _read_and_close(listener: socket.socket) -> None:
    accepted, _ = listener.accept()
    with accepted:
        accepted.recv(65536)


def test_close_ends_every_threads_connections(behaviour: Behaviour) -> None:
    transport = ThreadConnectionTransport()
    sdk = client(behaviour.base_url, transport)
    callers = [threading.Thread(target=call, args=(sdk,)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert behaviour.opened == 3 and behaviour.ended == 0
    transport.close()
    eventually(lambda: behaviour.ended == 3, timeout=10, interval=0.02, what="the server seeing 3 connections end")


@pytest.fixture
def certificate(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for localhost and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_https_is_verified_against_the_trusted_certificates(certificate: tuple[str, str]) -> None:
    cert_file, key_file = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    serving = _serving(tls)
    behaviour = next(serving)
    try:
        trusted = ThreadConnectionTransport(ssl_context=ssl.create_default_context(cafile=cert_file))
        sdk = client(behaviour.base_url, trusted)
        assert [call(sdk, number)["echo"] for number in (1, 2)] == [{"n": 1}, {"n": 2}]
        assert behaviour.opened == 1
        # The system's authorities do not know this certificate: the handshake fails, as a connection error.
        with pytest.raises(openai.APIConnectionError) as untrusted:
            call(client(behaviour.base_url, ThreadConnectionTransport()))
        assert isinstance(untrusted.value.__cause__.__cause__, ssl.SSLCertVerificationError)
    finally:
        serving.close()


def test_a_proxy_in_the_environment_keeps_the_sdks_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert direct_to("https://api.openai.com/v1")
    assert OpenAIProvider(api_key="k").http_client is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert not direct_to("https://api.openai.com/v1")
    assert direct_to("http://127.0.0.1:8000/v1")  # only https is proxied
    assert OpenAIProvider(api_key="k").http_client is None
    assert OpenAIProvider(api_key="k", base_url="http://vllm.internal:8000/v1").http_client is not None
    # The SDK's own default, or the one the environment gives it, is where the calls go.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.internal:8000/v1")
    assert OpenAIProvider(api_key="k").http_client is not None
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    assert sdk_http_client(None) is None
    monkeypatch.setenv("NO_PROXY", "vllm.internal")
    assert sdk_http_client(None) is not None
    assert isinstance(sdk_http_client(None)._transport, ThreadConnectionTransport)

@pytest.mark.parametrize(("url", "host", "port"), [("https://api.openai.com/v1", "api.openai.com", 443),
                                                   ("http://[::1]/v1", "::1", 80),
                                                   ("https://[2001:db8::7]:8443/v1", "2001:db8::7", 8443)])
def test_a_connection_goes_to_the_urls_host_and_port(url: str, host: str, port: int) -> None:
    # Nothing is connected: the connection is only made ready for the URL's server.
    connection = ThreadConnectionTransport()._connection(httpx2.URL(url)).connection
    assert (connection.host, connection.port) == (host, port)
