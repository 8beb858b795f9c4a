"""A cap on request bodies: larger ones answer 413 before the app reads them all.

A declared ``Content-Length`` over the cap is refused at once, without reading a
byte; a chunked body is counted as it arrives and refused when it passes the cap
(the app sees a 413, never a truncated body).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bgp_orchestrator.api.problems import problem_response


def _too_large(max_bytes: int) -> str:
    return f"the request body is larger than {max_bytes} bytes (BGPO_API_MAX_BODY_BYTES)"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    response = problem_response(413, "body-too-large", _too_large(self.max_bytes))
                    await response(scope, receive, send)
                    return
                break
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI passes HTTPExceptions from body reading on: a 413 problem.
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)
