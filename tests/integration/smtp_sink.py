"""SMTP servers for the e-mail alert tests: a real one (aiosmtpd, in a thread of its own)
that keeps every message it accepts, and one that accepts connections and never speaks."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port
from tests.integration.tcp_server import HeldConnections


class SmtpSink:
    """aiosmtpd on 127.0.0.1 (plain SMTP, no login): ``messages`` holds what it accepted,
    parsed, with the envelope's recipients under ``X-Envelope-To``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                with sink._arrived:
                    sink.messages.append(message)
                    sink._arrived.notify_all()
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait_for(self, count: int, within_s: float = 10.0) -> list[EmailMessage]:
        """Blocks the calling thread: use from synchronous tests (or a thread)."""
        deadline = time.monotonic() + within_s
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} e-mails arrived")
                self._arrived.wait(left)
            return list(self.messages)


class MuteSmtpServer(HeldConnections):
    """Accepts TCP connections and never sends a greeting (nor anything else)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self._connected = asyncio.Event()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._connected.set()
        self._writers.add(writer)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await reader.read()  # until the client gives up and closes
        writer.close()

    async def wait_for(self, count: int, within_s: float) -> None:
        """Until ``count`` connections were accepted (TimeoutError after ``within_s``)."""
        deadline = time.monotonic() + within_s
        while self.connections < count:
            self._connected.clear()
            await asyncio.wait_for(self._connected.wait(), max(0.01, deadline - time.monotonic()))
