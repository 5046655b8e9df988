"""A TCP proxy between a test and its PostgreSQL, to cut connections and play a host that no
longer answers."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse


class DatabaseProxy:
    """A TCP proxy to the database that can cut its connections, cut a chosen new one at its
    first query, and accept new ones without ever answering (a failed-over host that does not
    reply)."""

    def __init__(self, database_url: str) -> None:
        self.parts = urllib.parse.urlsplit(database_url)
        self.target = (self.parts.hostname or "127.0.0.1", self.parts.port or 5432)
        self.black_hole = False
        # connections, numbered from 1 in the order they arrive, to cut when they send their
        # first query (simple or extended protocol), before it reaches the database
        self.cut_at_first_query: set[int] = set()
        self.arrived = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen; the database URL through the proxy."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = int(self.server.sockets[0].getsockname()[1])
        netloc = f"{self.parts.username}:{self.parts.password}@127.0.0.1:{port}"
        return urllib.parse.urlunsplit(self.parts._replace(netloc=netloc))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.arrived += 1
        cut_at_query = self.arrived in self.cut_at_first_query
        self.writers.append(writer)
        if self.black_hole:
            return  # accepted, never answered
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    # (the startup packet begins with its length, a zero byte here; the
                    # authentication replies with "p")
                    if upstream and cut_at_query and data[:1] in (b"Q", b"P"):
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def cut(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
