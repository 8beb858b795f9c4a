"""The e-mail channel: alert messages sent over SMTP (aiosmtplib), one attempt at a time.

The SMTP server is the operator's (``BGPO_SMTP_HOST`` and friends), not the
tenant's, so it needs no egress check; the tenant only chooses the recipient.
Without ``BGPO_SMTP_HOST`` e-mail is off: every attempt answers
:data:`NOT_CONFIGURED` (the dispatcher records it and gives the delivery up at
once, the portal shows it next to the field and in the test-alert result), so
nothing is dropped silently. An attempt ends after ``timeout_s`` in total,
connection, TLS, login and data included, whatever the server does (a server
that accepts the connection and never greets holds only that attempt).
Neither the password nor the recipient is logged; errors name what failed.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib
from pydantic import SecretStr

from bgp_orchestrator.alerts import mail_format
from bgp_orchestrator.settings import Settings

TlsMode = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
#: What an e-mail attempt answers when no SMTP server is configured.
NOT_CONFIGURED = "Not sent: no SMTP server is configured (BGPO_SMTP_HOST is unset)"


@dataclass(frozen=True)
class Mailer:
    """Sends alert e-mail through one SMTP server; ``host`` None = e-mail is off."""

    host: str | None = None
    port: int | None = None
    sender: str = "bgp-orchestrator@localhost"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    tls: TlsMode = "starttls"
    timeout_s: float = 10.0
    link_base_url: str = "http://127.0.0.1:8000"
    #: Tests trust their own certificate authority; None = the system's.
    tls_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(
            host=settings.smtp_host or None,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username or None,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            timeout_s=settings.smtp_timeout_s,
            link_base_url=settings.smtp_link_base_url or settings.api_url,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def links(self) -> mail_format.Links:
        return mail_format.Links(self.link_base_url)

    def message(
        self, event: str, conflict: dict[str, Any], recipient: str, delivery_id: object
    ) -> EmailMessage:
        return mail_format.build(
            event,
            conflict,
            sender=self.sender,
            recipient=recipient,
            delivery_id=delivery_id,
            links=self.links,
        )

    async def send(self, message: EmailMessage) -> str | None:
        """One attempt: None when the server accepted the message, else what went wrong."""
        if not self.enabled:
            return NOT_CONFIGURED
        password = self.password.get_secret_value() if self.password is not None else None
        try:
            async with asyncio.timeout(self.timeout_s):
                await aiosmtplib.send(
                    message,
                    hostname=self.host,
                    port=self.port or DEFAULT_PORTS[self.tls],
                    username=self.username,
                    password=password if self.username else None,
                    use_tls=self.tls == "tls",
                    start_tls=self.tls == "starttls",
                    tls_context=self.tls_context,
                    timeout=self.timeout_s,
                )
        except TimeoutError:
            return f"Timeout: the SMTP server did not finish within {self.timeout_s:g} s"
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(str(r.code) for r in exc.recipients)
            return f"SMTPRecipientsRefused: the server refused the recipient ({codes})"
        except aiosmtplib.SMTPResponseException as exc:
            return f"{type(exc).__name__}: SMTP {exc.code} {exc.message[:200]}"
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, reset, TLS failed
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        return None
