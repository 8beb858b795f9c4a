"""A TCP server on 127.0.0.1 for the fault tests: receivers that hold connections open
(a webhook receiver that never answers, an SMTP server that never greets)."""

from __future__ import annotations

import asyncio
from typing import Self

from tests.conftest import free_port


class HeldConnections:
    """``async with``: listens on a free port, and at the exit closes every connection it
    still holds, then the server. Subclasses handle a connection in ``_client`` and add
    its writer to ``_writers``."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
