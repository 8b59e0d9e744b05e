"""A TCP proxy on loopback in front of PostgreSQL that can lose one answer: the statement (and
its COMMIT) reach the server and commit, then the connection is cut before the client reads
the reply, so the client cannot know the outcome. This is what a failover does to a commit in
flight; here it happens on cue, to one chosen statement."""

from __future__ import annotations

import asyncio
import contextlib


class LossyProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``. ``lose_commit_of(marker)``: the next
    transaction whose statements contain ``marker`` commits on the server, and its client
    never hears so (the connection is cut once the server has answered the COMMIT).
    ``lose_answer_of(marker)``: the same for a statement run in autocommit (its own
    transaction): the server runs and commits it, its answer is lost."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.lost = 0  # answers lost so far
        self._marker: bytes | None = None
        self._autocommit = False  # the marked statement commits by itself (no COMMIT)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def lose_commit_of(self, marker: bytes) -> None:
        self._marker, self._autocommit = marker, False

    def lose_answer_of(self, marker: bytes) -> None:
        self._marker, self._autocommit = marker, True

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        cut = asyncio.Event()  # set: the answers from the server are no longer relayed

        async def upstream() -> None:
            armed = False
            while chunk := await client_r.read(65536):
                if self._marker is not None and self._marker in chunk:
                    armed, self._marker = True, None
                server_w.write(chunk)
                await server_w.drain()
                if armed and (self._autocommit or b"COMMIT" in chunk):
                    cut.set()
                    return

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if cut.is_set():
                    break
                client_w.write(data)
                await client_w.drain()

        up = asyncio.create_task(upstream())
        down = asyncio.create_task(downstream())
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if cut.is_set():
                # The server answers the COMMIT (it has committed); that answer is lost.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(down, 10)
                self.lost += 1
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()
