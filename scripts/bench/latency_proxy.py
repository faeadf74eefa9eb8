#!/usr/bin/env python3
"""A TCP proxy that adds network latency, for the benchmarks.

    latency_proxy.py LISTEN_PORT UPSTREAM_HOST:UPSTREAM_PORT RTT_MS [MBIT_PER_S]

Listens on 127.0.0.1:LISTEN_PORT and forwards every connection to the
upstream. Each chunk of bytes, in either direction, is delivered RTT_MS/2
after it arrived, in order, as a link of that round trip would (a request
and its answer: one RTT more than without the proxy). With MBIT_PER_S, each
direction of each connection is also capped at that rate. Prints
"listening" once ready. Loopback only; standard library only.
"""

import asyncio
import sys
import time


async def pump(reader, writer, delay, rate):
    """Copy reader to writer, each chunk `delay` seconds late, at most
    `rate` bytes a second (0: unlimited)."""
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, asyncio.CancelledError):
            await queue.put((time.monotonic(), b""))

    async def write():
        free_at = time.monotonic()
        try:
            while True:
                due, data = await queue.get()
                now = time.monotonic()
                if rate:
                    # The link is busy until the previous chunk went through.
                    due = max(due, free_at)
                    free_at = due + len(data) / rate
                if due > now:
                    await asyncio.sleep(due - now)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            return

    await asyncio.gather(read(), write())


async def main():
    listen, upstream, rtt_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    rate = float(sys.argv[4]) * 1e6 / 8 if len(sys.argv) > 4 else 0
    host, port = upstream.rsplit(":", 1)
    delay = rtt_ms / 2000.0

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                pump(client_reader, up_writer, delay, rate),
                pump(up_reader, client_writer, delay, rate),
            )
        finally:
            for w in (up_writer, client_writer):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=1024)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
