"""The BMP station: routers connect over TCP and stream BMP (RFC 7854); updates go to Kafka.

One asyncio server; one task per router connection, reading what its socket has
(64 KiB at most) and handling every whole message in it, the updates published
together (so a connection holds at most one message of ``max_message`` bytes and a
read in memory, and a publisher that waits for the broker slows the routers down
through TCP instead of growing a buffer). Every message's common header is checked
before its body is waited for; a message that is wrong in itself goes to the
dead-letter topic with the reason and the router's connection goes on. Only when
the header itself is impossible (another version, a length out of range: the
stream's framing is lost) is that router's connection closed, after its dead
letter; the router reconnects and starts over with Initiation and Peer Up, as RFC
7854 has it. Nothing a router sends affects another router's connection.

A router whose connection ends without a Termination message is logged; its
sessions are not declared down (BMP lost sight of them, the BGP sessions may be
fine), and when it reconnects its Peer Up messages and the table it sends again
bring the state up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from bgp_orchestrator.bgp.parsers import bmp
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import BgpoError, ConfigurationError
from bgp_orchestrator.ingest.deadletter import MAX_PAYLOAD, DeadLetter
from bgp_orchestrator.ingest.publisher import UpdatePublisher

log = logging.getLogger(__name__)

DEFAULT_PORT = 11019
#: Bytes read from a connection at once (its whole messages are handled together).
READ_SIZE = 1 << 16
#: Dead letters of one connection logged one by one; after that one in every 1,000.
LOGGED_DEAD_LETTERS = 20
#: Updates and dead letters waiting for the broker beyond which a connection with a
#: dead letter to send waits.
MAX_PENDING = 50_000
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` (port 11019) -> (host, port). The host is
    required: a station reachable from routers listens beyond loopback, and which
    interface that is the operator says (``0.0.0.0`` or ``[::]`` for all)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ConfigurationError("invalid-listen", f"{text!r}: missing ']'", "listen", text)
        host, rest = value[1:close], value[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigurationError(
                "invalid-listen", f"{text!r}: expected [ADDRESS]:PORT", "listen", text
            )
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif value.count(":") > 1:  # a bare IPv6 address
        host = value
    if not host:
        raise ConfigurationError(
            "invalid-listen",
            f"{text!r}: name the address to listen on, e.g. 192.0.2.10:{DEFAULT_PORT}, or "
            f"0.0.0.0:{DEFAULT_PORT} / [::]:{DEFAULT_PORT} for every interface",
            "listen",
            text,
        )
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ConfigurationError(
            "invalid-listen", f"{text!r}: the port must be a number", "listen", text
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(
            "invalid-listen", f"{text!r}: port {port} is out of range", "listen", text
        )
    return host, port


def parse_allow(values: Iterable[str]) -> list[_IPNetwork]:
    out: list[_IPNetwork] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ConfigurationError(
                "invalid-allow", f"--allow {value!r}: {exc}", "allow", value
            ) from None
    return out


@dataclass
class Connection:
    """One router connection: its decoder state and counters."""

    address: str
    port: int
    router: bmp.Router
    connected: float = field(default_factory=time.time)
    closed: float | None = None
    messages: int = 0
    bytes: int = 0
    dead_letters: int = 0
    why_closed: str = ""

    @property
    def label(self) -> str:
        name = self.router.name
        where = f"{self.address}:{self.port}"
        return where if name == self.address else f"{name} ({where})"

    def summary(self) -> dict[str, object]:
        stats = self.router.stats
        return {
            "router": self.router.name,
            "address": f"{self.address}:{self.port}",
            "sys_descr": self.router.sys_descr,
            "messages": self.messages,
            "by_type": dict(stats.messages),
            "updates": stats.updates,
            "dead_letters": self.dead_letters,
            "peers_up": sum(1 for p in self.router.peers.values() if p.up),
            "adj_rib_out_skipped": stats.skipped_adj_rib_out,
            "view_skipped": stats.skipped_views,
            "local_as_removed": stats.local_as_removed,
            "connected": self.connected,
            "closed": self.closed,
            "why_closed": self.why_closed,
        }


class BmpStation:
    """Accepts routers on ``host:port`` and publishes their updates through ``publisher``.

    ``allow`` (networks) restricts who may connect; ``views`` chooses which of the
    pre-policy / post-policy Adj-RIB-In and the Loc-RIB are published;
    ``max_routers`` bounds the connections at once. :meth:`run` serves until ``stop``
    is set, then closes the connections (after the message each is handling) and
    returns; the caller flushes and closes the publisher.
    """

    def __init__(
        self,
        publisher: UpdatePublisher,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        views: Iterable[str] = bmp.VIEWS,
        allow: Iterable[_IPNetwork] = (),
        max_routers: int = 256,
        max_message: int = bmp.MAX_MESSAGE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.publisher = publisher
        self.host = host
        self.port = port
        self.views = tuple(views)
        unknown = set(self.views) - set(bmp.VIEWS)
        if unknown or not self.views:
            raise ConfigurationError(
                "invalid-view",
                f"views must be among {', '.join(bmp.VIEWS)}, got {sorted(unknown) or 'none'}",
                "view",
                sorted(unknown),
            )
        self.allow = list(allow)
        self.max_routers = max_routers
        self.max_message = max_message
        self.max_pending = max_pending
        self.connections: dict[asyncio.Task[None], Connection] = {}
        self.finished: list[Connection] = []
        self.refused = 0
        self.failure: BaseException | None = None
        self._server: asyncio.Server | None = None
        self._stop: asyncio.Event | None = None
        self.ready = asyncio.Event()

    # -- the server -------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True, limit=1 << 16
            )
        except OSError as exc:
            raise ConfigurationError(
                "bmp-listen-failed",
                f"cannot listen for BMP on {self.host}:{self.port}: {exc.strerror or exc}; "
                "choose another address or port with --listen",
                "listen",
                f"{self.host}:{self.port}",
            ) from exc
        sockets = list(self._server.sockets)
        if sockets and self.port == 0:
            self.port = int(sockets[0].getsockname()[1])
        log.info(
            "BMP station listening on %s:%s (views: %s%s)",
            self.host,
            self.port,
            ", ".join(self.views),
            f"; routers from {', '.join(map(str, self.allow))}" if self.allow else "",
        )
        self.ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; raises the publisher's failure if publishing failed."""
        self._stop = stop
        if self._server is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.shutdown()
        if self.failure is not None:
            raise self.failure

    async def shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self.connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def report(self, interval: float) -> None:
        """Log each connected router's counters every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            for connection in list(self.connections.values()):
                stats = connection.router.stats
                log.info(
                    "BMP router %s: %d messages, %d updates, %d dead letters, %d peers up",
                    connection.label,
                    connection.messages,
                    stats.updates,
                    connection.dead_letters,
                    sum(1 for p in connection.router.peers.values() if p.up),
                )

    def routers(self) -> list[dict[str, object]]:
        """Per-connection statistics: the open ones, then the closed ones."""
        return [c.summary() for c in self.connections.values()] + [
            c.summary() for c in self.finished
        ]

    # -- one router -------------------------------------------------------------------

    def _allowed(self, address: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allow)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        address, port = str(peername[0]), int(peername[1])
        if not self._allowed(address):
            self.refused += 1
            log.warning("refused a BMP connection from %s:%s: not in --allow", address, port)
            writer.close()
            return
        if len(self.connections) >= self.max_routers:
            self.refused += 1
            log.warning(
                "refused a BMP connection from %s:%s: %d routers connected already (--max-routers)",
                address,
                port,
                len(self.connections),
            )
            writer.close()
            return
        _keepalive(writer)
        task = asyncio.current_task()
        assert task is not None
        connection = Connection(address, port, bmp.Router(address, self.views))
        connection.router.log = lambda text: log.info("%s: %s", connection.label, text)
        self.connections[task] = connection
        log.info("BMP router connected from %s:%s", address, port)
        try:
            connection.why_closed = await self._serve(connection, reader)
        except asyncio.CancelledError:
            connection.why_closed = "the station stopped"
        except BgpoError as exc:  # the publisher failed: the station cannot go on
            connection.why_closed = f"publishing failed: {exc.message}"
            if self.failure is None:
                self.failure = exc
            if self._stop is not None:
                self._stop.set()
        except Exception as exc:  # a bug: logged with its trace, never taken for the rest
            log.exception("BMP connection of %s failed", connection.label)
            connection.why_closed = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            connection.closed = time.time()
            self.connections.pop(task, None)
            self.finished.append(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
            stats = connection.router.stats
            log.info(
                "BMP router %s disconnected (%s): %d messages, %d updates, %d dead letters",
                connection.label,
                connection.why_closed,
                connection.messages,
                stats.updates,
                connection.dead_letters,
            )

    async def _serve(self, connection: Connection, reader: asyncio.StreamReader) -> str:
        """Read and handle messages until the connection ends; returns why it ended.

        What the socket has is read at once (up to :data:`READ_SIZE`), every whole
        message in it handled and their updates published together; a message not yet
        whole stays in the buffer, which never holds more than one message and a read.
        """
        router = connection.router
        buffer = bytearray()
        while True:
            try:
                chunk = await reader.read(READ_SIZE)
            except OSError as exc:
                return f"connection error: {exc}"
            if not chunk:
                if buffer:
                    await self._truncated(connection, bytes(buffer))
                    return "closed mid-message"
                return "closed by the router"
            buffer += chunk
            updates: list[Update] = []
            at = 0
            why: str | None = None
            while len(buffer) - at >= bmp.HEADER:
                try:
                    length, _ = bmp.parse_header(
                        bytes(buffer[at : at + bmp.HEADER]), self.max_message
                    )
                except bmp.FramingLost as exc:
                    # what follows is unreadable: dead-letter what arrived of it, and give
                    # this router a fresh start
                    payload = bytes(buffer[at : at + MAX_PAYLOAD])
                    await self._dead(connection, exc, payload, connection.messages + 1)
                    log.error(
                        "BMP router %s: %s; closing its connection (the router reconnects and "
                        "starts over)",
                        connection.label,
                        exc.message,
                    )
                    why = f"framing lost: {exc.message}"
                    break
                if len(buffer) - at < length:
                    break  # the rest of the message is still on its way
                message = bytes(buffer[at : at + length])
                at += length
                connection.messages += 1
                connection.bytes += length
                updates.extend(await self._handle(connection, message))
                if router.terminated is not None:
                    log.info("BMP router %s terminated: %s", connection.label, router.terminated)
                    why = f"terminated: {router.terminated}"
                    break
            del buffer[:at]
            if updates:
                await self.publisher.publish(updates)
            else:
                await asyncio.sleep(0)  # a turn for the others, even with data waiting here
            if why is not None:
                return why

    async def _handle(self, connection: Connection, message: bytes) -> list[Update]:
        """The message's updates; a message that cannot be decoded is dead-lettered."""
        try:
            updates = connection.router.handle(message)
        except Malformed as exc:
            await self._malformed(connection, exc, message)
            return []
        except Exception as exc:  # a decoder bug: this message is lost, not the others
            log.exception(
                "BMP router %s: message %d broke the decoder", connection.label, connection.messages
            )
            failed = Malformed(
                "bmp-decoder-error", f"the decoder failed: {type(exc).__name__}: {exc}"
            )
            await self._dead(connection, failed, message, connection.messages)
            return []
        if message[5] == bmp.INITIATION:
            self._introduced(connection)
        return updates

    def _introduced(self, connection: Connection) -> None:
        router = connection.router
        log.info(
            "BMP router %s:%s is %s (%s)",
            connection.address,
            connection.port,
            router.name,
            router.sys_descr or "no sysDescr",
        )
        for other in self.connections.values():
            if other is connection or other.router.name != router.name:
                continue
            if other.address == connection.address:
                log.info(
                    "BMP router %s connected again while its connection from port %s is "
                    "still open (that one ends when TCP notices it is gone)",
                    router.name,
                    other.port,
                )
            else:
                log.warning(
                    "BMP routers %s and %s both call themselves %s: their sessions share "
                    "names (give each router its own hostname)",
                    f"{other.address}:{other.port}",
                    f"{connection.address}:{connection.port}",
                    router.name,
                )

    async def _malformed(self, connection: Connection, exc: Malformed, message: bytes) -> None:
        await self._dead(connection, exc, message, connection.messages)
        if _worth_logging(connection.dead_letters):
            log.warning(
                "BMP router %s: message %d (%s) dead-lettered: %s%s",
                connection.label,
                connection.messages,
                bmp.MESSAGE_TYPES.get(message[5], f"type {message[5]}"),
                exc.message,
                f" ({connection.dead_letters:,} from this router so far; the next "
                "ones are logged less often)"
                if connection.dead_letters >= LOGGED_DEAD_LETTERS
                else "",
            )

    async def _truncated(self, connection: Connection, partial: bytes) -> None:
        if len(partial) < bmp.HEADER:
            what = f"inside a message header ({len(partial)} bytes)"
        else:
            length = int.from_bytes(partial[1:5], "big")
            what = f"{length - len(partial)} bytes short of a {length}-byte message"
        exc = Malformed("bmp-truncated", f"the connection ended {what}")
        await self._dead(connection, exc, partial, connection.messages + 1)

    async def _dead(
        self, connection: Connection, exc: Malformed, payload: bytes, number: int
    ) -> None:
        """A dead letter for message ``number`` (counted from 1) of the connection."""
        connection.dead_letters += 1
        counts = connection.router.stats.dead_letters
        counts[exc.code] = counts.get(exc.code, 0) + 1
        position = f"{connection.address}:{connection.port} message {number}"
        reason = exc.message
        if connection.router.name != connection.address:
            reason = f"router {connection.router.name}: {reason}"
        # a router sending nothing but garbage must not fill the memory with dead letters
        # waiting for the broker: it waits (and so its TCP window closes), the others not
        await self.publisher.wait_below(self.max_pending)
        await self.publisher.dead_letter(DeadLetter(exc.code, reason, "bmp", position, payload))


def _worth_logging(count: int) -> bool:
    return count <= LOGGED_DEAD_LETTERS or count % 1000 == 0


def _keepalive(writer: asyncio.StreamWriter) -> None:
    """TCP keepalives: BMP has none of its own, and a quiet router is normal, so a dead
    one would otherwise hold its connection for ever."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
