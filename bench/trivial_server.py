"""``python -m bench.trivial_server --port N``: the cheapest HTTP server we can write, to show the load tool's reach.

It answers every request on a keep-alive connection with a fixed ``202``, reading just enough of the request to
know where it ends. wrk driving this far faster than it drives feedback-api shows that wrk is not what limits the
ingest figures.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

_RESPONSE = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
             b"connection: keep-alive\r\n\r\n{}")


class _Connection(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15:].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                break
            self.buffer = self.buffer[end + 4 + length:]
            answers += 1
        if answers:
            self.transport.write(_RESPONSE * answers)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Connection, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
