"""Alert e-mail: a plain-text body and a simple HTML twin a network engineer can read.

One message per conflict event: the subject says severity, type, event, prefix
and origin; the body lists conflict type, prefix, origin AS, the expected
origin(s) when the detector knows them, severity, state, when it was seen, the
AS path, and links to the portal and to the conflict in the API. The
``Message-ID`` is derived from the delivery id, so a retry of the same delivery
carries the same one (mail clients and receivers can de-duplicate on it).
Every value in the HTML part is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any


@dataclass(frozen=True)
class Links:
    """Where the e-mail points: the portal and the API, both under ``base_url``."""

    base_url: str

    @property
    def portal(self) -> str:
        return f"{self.base_url.rstrip('/')}/portal/"

    def api_conflict(self, conflict_id: object) -> str:
        return f"{self.base_url.rstrip('/')}/api/v1/conflicts/{conflict_id}"


def _asn(value: object) -> str:
    return f"AS{value}" if value not in (None, "") else "-"


def expected_origin(details: Mapping[str, Any]) -> str:
    """The origin(s) the detector expected, from the conflict's details, or "-"."""
    origins: list[object] = list(details.get("authorised_origins") or [])
    if not origins:
        origins = [v.get("asn") for v in details.get("covering_vrps") or [] if isinstance(v, dict)]
    return ", ".join(dict.fromkeys(_asn(o) for o in origins if o is not None)) or "-"


def fields(event: str, conflict: Mapping[str, Any], links: Links) -> list[tuple[str, str]]:
    """The label/value lines both bodies show, in order."""
    details = conflict.get("details") or {}
    explanation = details.get("explanation") or details.get("reason") or ""
    seen = conflict.get("last_seen") or conflict.get("first_seen") or "-"
    rows = [
        ("Conflict type", str(conflict.get("type") or "-")),
        ("Event", event),
        ("Prefix", str(conflict.get("prefix") or "-")),
        ("Origin AS", _asn(conflict.get("origin_asn"))),
        ("Expected origin", expected_origin(details)),
        ("Severity", str(conflict.get("severity") or "-")),
        ("State", str(conflict.get("state") or "-")),
        ("First seen", str(conflict.get("first_seen") or "-")),
        ("Last seen", str(seen)),
        ("AS path", str(conflict.get("as_path") or "-")),
        ("Seen by", f"{len(conflict.get('peers') or [])} peer(s)"),
    ]
    if explanation:
        rows.append(("Explanation", str(explanation)))
    rows.append(("Portal", links.portal))
    if conflict.get("id"):
        rows.append(("API", links.api_conflict(conflict["id"])))
    return rows


def subject(event: str, conflict: Mapping[str, Any]) -> str:
    origin = conflict.get("origin_asn")
    test = "[TEST] " if conflict.get("test") else ""
    return (
        f"{test}[BGPO {conflict.get('severity')}] {conflict.get('type')} {event}: "
        f"{conflict.get('prefix')}" + (f" from AS{origin}" if origin else "")
    )


def plain_text(event: str, conflict: Mapping[str, Any], links: Links) -> str:
    rows = fields(event, conflict, links)
    width = max(len(label) for label, _ in rows) + 1
    lines = [subject(event, conflict), ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in rows]
    lines += ["", "-- ", "BGP Orchestrator alert e-mail; change what you receive in the portal."]
    return "\n".join(lines) + "\n"


def html_body(event: str, conflict: Mapping[str, Any], links: Links) -> str:
    cells = []
    for label, value in fields(event, conflict, links):
        shown = html.escape(value)
        if value.startswith(("http://", "https://")):
            shown = f'<a href="{html.escape(value, quote=True)}">{shown}</a>'
        elif label == "AS path":
            shown = f"<code>{shown}</code>"
        cells.append(
            f'<tr><th align="left" style="padding:2px 12px 2px 0">{html.escape(label)}</th>'
            f"<td>{shown}</td></tr>"
        )
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f"<p><strong>{html.escape(subject(event, conflict))}</strong></p>"
        f"<table>{''.join(cells)}</table>"
        '<p style="color:#666">BGP Orchestrator alert e-mail; change what you receive in '
        f'the <a href="{html.escape(links.portal, quote=True)}">portal</a>.</p>'
        "</body></html>\n"
    )


def message_id(delivery_id: object, sender: str) -> str:
    """The same for every attempt of one delivery."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<bgpo-delivery-{delivery_id}@{domain}>"


def recipient_address(address: str) -> Address:
    """One plain ``local@domain`` address; ValueError for anything else (a list, a display
    name, a line break: no second recipient, no header injection)."""
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, HeaderParseError) as exc:
        raise ValueError(f"not a single e-mail address: {address!r} ({exc})") from None
    if parsed.addr_spec != address or not parsed.domain or "," in address:
        raise ValueError(f"not a single e-mail address: {address!r}")
    return parsed


def build(
    event: str,
    conflict: Mapping[str, Any],
    *,
    sender: str,
    recipient: str,
    delivery_id: object,
    links: Links,
) -> EmailMessage:
    """The whole message (multipart/alternative: text first, HTML second). ``recipient``
    must be one address (a ValueError otherwise: no header injection, no second one)."""
    to = recipient_address(recipient)
    message = EmailMessage()
    message["Subject"] = subject(event, conflict)
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(delivery_id, sender)
    message["X-BGPO-Event"] = event
    message["X-BGPO-Delivery"] = str(delivery_id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain_text(event, conflict, links))
    message.add_alternative(html_body(event, conflict, links), subtype="html")
    return message
