"""Where webhooks may point: public addresses only, checked on save and on every delivery.

A webhook URL is a request the system makes on a tenant's behalf, so it must
not reach what only the system can reach: loopback, link-local (cloud metadata
at 169.254.169.254), private, carrier-grade NAT, multicast, unspecified or
otherwise reserved addresses. The host is resolved and *every* address it
resolves to must be public (or inside ``allowed_networks``, a lab's escape
hatch); the delivery then connects to the address that was checked, with the
original name in ``Host`` and TLS SNI, so a DNS answer that changes between the
check and the connection (rebinding) cannot redirect it. Numeric host forms
(``2130706433``, ``0x7f000001``, ``127.1``) resolve to the address they stand
for and are judged by it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> the addresses the host resolves to (strings, as getaddrinfo gives them).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo, /etc/hosts included)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_refused(address: IPAddress) -> str | None:
    """Why this address is no place for a webhook, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for check, name in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    ):
        if check:
            return name
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT)
        return "not globally routable"
    return None


@dataclass(frozen=True)
class Target:
    """A checked delivery target: connect to ``url`` (its host is the checked address),
    send ``host_header``, and verify TLS against ``sni_hostname``."""

    url: httpx.URL
    address: str
    host_header: str
    sni_hostname: str | None


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses webhooks may reach. ``allowed_networks`` are allowed although not
    public (a lab's receivers, the tests' receivers on 127.0.0.1)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)
    resolve_timeout_s: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """Public addresses, and the networks in BGPO_WEBHOOK_ALLOWED_NETWORKS."""
        return cls(tuple(settings.webhook_allowed_networks))

    @classmethod
    def allowing(cls, networks: Iterable[str | IPNetwork], **kwargs: object) -> EgressPolicy:
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        return cls(nets, **kwargs)  # type: ignore[arg-type]

    def refusal(self, address: IPAddress) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed_networks):
            return None
        return why_refused(address)

    async def check(self, url: str, field_name: str = "url") -> Target:
        """Resolve ``url``'s host and return where to connect; InvalidInput (naming
        ``field_name``) when it is not http(s) or any of its addresses is refused."""

        def refuse(code: str, message: str) -> InvalidInput:
            # The URL is the tenant's own input, echoed to them only (never logged).
            return InvalidInput(code, message, field_name)

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise refuse("webhook-url-invalid", f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise refuse("webhook-url-invalid", "webhook URLs must be http:// or https://host")
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                async with asyncio.timeout(self.resolve_timeout_s):
                    addresses = await self.resolver(host, port)
            except (OSError, TimeoutError) as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                raise refuse(
                    "webhook-host-unresolvable", f"the host {host!r} does not resolve ({reason})"
                ) from None
            if not addresses:
                raise refuse("webhook-host-unresolvable", f"the host {host!r} does not resolve")
        for text in addresses:
            refused = self.refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if refused is not None:
                shown = host if literal is not None else f"{host} ({text})"
                raise refuse(
                    "webhook-address-refused",
                    f"webhooks may not point at {refused} addresses: {shown}; only public "
                    "addresses are reached (an operator can allow lab networks with "
                    "BGPO_WEBHOOK_ALLOWED_NETWORKS)",
                )
        address = addresses[0]
        netloc = parsed.netloc.decode("ascii")
        return Target(
            url=parsed.copy_with(host=address),
            address=address,
            host_header=netloc,
            sni_hostname=host if parsed.scheme == "https" and literal is None else None,
        )
