"""Dead-letter records: what could not be processed, why, and where it came from."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import orjson

from bgp_orchestrator.errors import BgpoError

MAX_PAYLOAD = 4096


@dataclass(frozen=True)
class DeadLetter:
    code: str
    reason: str
    source: str
    position: str
    payload: str | bytes = ""
    at: float = field(default_factory=time.time)

    @classmethod
    def from_error(
        cls, exc: BgpoError, source: str, position: str, payload: str | bytes = ""
    ) -> DeadLetter:
        return cls(exc.code, exc.message, source, position, payload)

    def encode(self) -> bytes:
        if isinstance(self.payload, bytes):
            try:
                text, encoding = self.payload[:MAX_PAYLOAD].decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text = base64.b64encode(self.payload[:MAX_PAYLOAD]).decode()
                encoding = "base64"
        else:
            text, encoding = self.payload[:MAX_PAYLOAD], "utf-8"
        return orjson.dumps(
            {
                "code": self.code,
                "reason": self.reason,
                "source": self.source,
                "position": self.position,
                "payload": text,
                "payload_encoding": encoding,
                "at": self.at,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> DeadLetter:
        d = orjson.loads(data)
        payload: str | bytes = d.get("payload", "")
        if d.get("payload_encoding") == "base64":
            payload = base64.b64decode(payload)
        return cls(d["code"], d["reason"], d["source"], d["position"], payload, d["at"])
