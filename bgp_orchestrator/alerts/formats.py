"""Webhook bodies: generic JSON, and Slack-compatible (incoming webhook ``text`` + ``blocks``)."""

from __future__ import annotations

from typing import Any

SEVERITY_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}


def generic(event: str, event_id: int, conflict: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "event_id": event_id, "conflict": conflict}


def slack(event: str, event_id: int, conflict: dict[str, Any]) -> dict[str, Any]:
    emoji = SEVERITY_EMOJI.get(str(conflict.get("severity")), "")
    origin = conflict.get("origin_asn")
    title = (
        f"{emoji} {str(conflict.get('type', '')).replace('-', ' ')} {event}: "
        f"{conflict.get('prefix')}" + (f" from AS{origin}" if origin else "")
    )
    details = conflict.get("details") or {}
    explanation = details.get("explanation") or details.get("reason") or ""
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{conflict.get('severity')}"},
        {"type": "mrkdwn", "text": f"*State*\n{conflict.get('state')}"},
        {"type": "mrkdwn", "text": f"*AS path*\n`{conflict.get('as_path') or '-'}`"},
        {"type": "mrkdwn", "text": f"*Seen by*\n{len(conflict.get('peers') or [])} peer(s)"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "section", "fields": fields},
    ]
    if explanation:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": str(explanation)}]}
        )
    return {"text": title, "blocks": blocks}
