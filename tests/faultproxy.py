"""A small fault-injecting HTTP/1.1 proxy for tests (asyncio, loopback only).

The proxy sits between a client (the wrapper, or a minio client in a test) and an upstream
S3 server (the moto server of ``tests/conftest.py``). It runs its own asyncio loop in a
background thread, listens on ``127.0.0.1`` on a free port and forwards HTTP/1.1 traffic
byte for byte (request head and body, response head and body; keep-alive connections with
several requests; ``Content-Length`` and ``Transfer-Encoding: chunked`` bodies; ``100
Continue``). The ``Host`` header is not rewritten, so request signatures stay valid.

Faults are switched at run time from the test thread; every control call is executed on the
proxy's loop and has taken effect when it returns (thread-safe, no sleeping needed)::

    with FaultProxy("127.0.0.1", s3.port) as proxy:
        client = Minio(proxy.netloc, ...)          # or proxy.endpoint for the wrapper
        proxy.down_for(3.0)                        # refuse connections for 3 s, then up again
        proxy.fail_fraction(0.3, status=503, seed=1)
        proxy.throttle(1_000_000, direction="upload")
        proxy.heal()                               # back to a clean pass-through
        assert proxy.stats().faults == ...

API (``Fault`` is an HTTP status such as ``503``/``500``, or one of the connection faults)

- ``FaultProxy(upstream_host, upstream_port)``; ``start()``/``stop()`` or ``with``.
  Properties ``port``, ``netloc`` (``"127.0.0.1:PORT"``), ``endpoint`` (``"http://..."``).
- ``set_mode(fault, *, seconds=None, count=None, fraction=None, seed=0)``: the one active
  fault rule (a new call replaces the previous rule). Without a limit the fault applies to
  every request until changed; ``seconds`` limits it to a time window, ``count`` to the next
  N requests, ``fraction`` to that share of requests chosen by ``random.Random(seed)``
  (deterministic for a given request sequence); ``match="TEXT"`` limits it to requests whose
  target contains TEXT (e.g. one object's key). ``set_mode("pass")`` clears the rule.
- Faults:
    - ``"refuse"``: stop listening (connects get ECONNREFUSED; the port stays reserved) and
      reset every open connection. Only with no limit or ``seconds``.
    - ``"reset"``: when a request head arrives, reset the connection (RST via SO_LINGER 0)
      before its body is read and before anything reaches the upstream.
    - ``"close"``: when a request head arrives, close the connection (FIN), no response.
    - ``"stall"``: read and discard everything the client sends, never answer.
    - an ``int`` status: answer it with an S3 XML error body (503 ``SlowDown``, 500
      ``InternalError``, others a matching code), after reading and discarding the request
      body, keeping the connection alive (``Connection: close`` for ``Expect:
      100-continue`` requests, whose body may never come).
    - ``"corrupt"``: forward a PUT with a length-framed body, its first byte flipped (as if the
      network damaged it; the upstream answers as it would). Other requests pass and do not
      count against ``count``/``fraction``.
    - ``"no-etag"``: forward the request, and drop the ``ETag`` header from its answer (a
      server whose ETags say nothing about the bytes).
- Helpers: ``down()``, ``down_for(seconds)``, ``fail_for(seconds, status=503)``,
  ``fail_next(n, status=503)``, ``fail_fraction(fraction, status=503, seed=0)``.
- ``throttle(bytes_per_second, direction="both")``: cap the proxy's forwarding rate
  (``"both"``, ``"upload"`` client to server, ``"download"``); ``None`` removes the cap.
  The cap is shared by all connections, per direction.
- ``heal()``: no fault rule, no throttle, listening.
- ``stats() -> Stats``: connections accepted, requests seen (every request head parsed,
  faulted or not), ``by_method``, ``faults`` (requests answered with an injected fault),
  ``by_fault``, ``forwarded``, ``bytes_up``, ``bytes_down``.
- ``requests() -> list[RequestRecord]``: method, target, fault (``None`` if forwarded) and
  the status sent back (``None`` if none), in arrival order. ``reset_stats()`` clears both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http
import random
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable, Literal, Optional, TypeVar, Union

Fault = Union[int, Literal["pass", "refuse", "reset", "close", "stall", "corrupt", "no-etag"]]
Direction = Literal["both", "upload", "download"]
_Way = Literal["up", "down"]
T = TypeVar("T")

_HEAD_LIMIT = 64 * 1024
_CHUNK = 256 * 1024
_CONTROL_TIMEOUT = 10.0
_LINGER_TIMEOUT = 2.0
_CONNECTION_FAULTS = ("refuse", "reset", "close", "stall")
_FORWARDING_FAULTS = ("corrupt", "no-etag")  # the request still reaches the upstream
_S3_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Injected bad request."),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Injected bad gateway."),
    503: ("SlowDown", "Please reduce your request rate."),
    504: ("GatewayTimeout", "Injected gateway timeout."),
}


@dataclass(frozen=True)
class Stats:
    connections: int
    requests: int
    by_method: Mapping[str, int]
    faults: int
    by_fault: Mapping[str, int]
    forwarded: int
    bytes_up: int
    bytes_down: int


@dataclass(frozen=True)
class RequestRecord:
    method: str
    target: str
    fault: Optional[str]
    status: Optional[int]


class _ProtocolError(Exception):
    """Unparseable HTTP from either side: the connection is dropped."""


@dataclass
class _Message:
    """A parsed request or response head."""

    start: list[str]
    headers: list[tuple[str, str]]

    def get(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for t in (self.get(name) or "").split(",") if t.strip()]

    def framing(self) -> Union[int, Literal["chunked", "eof"]]:
        """Body framing from the headers: a length, chunked, or until EOF."""
        codings = self.tokens("transfer-encoding")
        if codings:
            return "chunked" if codings[-1] == "chunked" else "eof"
        length = self.get("content-length")
        if length is None:
            return "eof"
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _ProtocolError(f"bad Content-Length {length!r}")
        return int(values.pop())

    def keep_alive(self, version: str) -> bool:
        connection = self.tokens("connection")
        if version == "HTTP/1.1":
            return "close" not in connection
        return "keep-alive" in connection


def _parse(head: bytes, request: bool) -> _Message:
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    if len(start) < (3 if request else 2):
        raise _ProtocolError(f"bad start line {lines[0]!r}")
    version = start[2] if request else start[0]
    if not version.startswith("HTTP/1."):
        raise _ProtocolError(f"unsupported protocol {version!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _ProtocolError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return _Message(start, headers)


@dataclass
class _Rule:
    fault: str
    status: Optional[int]
    until: Optional[float] = None
    remaining: Optional[int] = None
    fraction: Optional[float] = None
    rng: Optional[random.Random] = None
    match: Optional[str] = None  # only requests whose target contains this


@dataclass
class _Record:
    method: str
    target: str
    fault: Optional[str] = None
    status: Optional[int] = None


@dataclass(eq=False)
class _Conn:
    task: Optional[asyncio.Task[None]] = None
    reader: Optional[asyncio.StreamReader] = None
    writer: Optional[asyncio.StreamWriter] = None
    up_reader: Optional[asyncio.StreamReader] = None
    up_writer: Optional[asyncio.StreamWriter] = None

    def drop_upstream(self) -> None:
        if self.up_writer is not None:
            self.up_writer.transport.abort()
        self.up_reader = self.up_writer = None

    def close(self, reset: bool = False) -> None:
        """Close the client side (with RST if ``reset``) and the upstream connection."""
        self.drop_upstream()
        if self.writer is None:
            return
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        else:
            self.writer.close()


@dataclass
class _Counters:
    connections: int = 0
    requests: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    faults: int = 0
    by_fault: dict[str, int] = field(default_factory=dict)
    forwarded: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    records: list[_Record] = field(default_factory=list)


class FaultProxy:
    """Fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._port = 0
        self._lsock: Optional[socket.socket] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop_event: Optional[asyncio.Event] = None
        self._accept_task: Optional[asyncio.Task[None]] = None
        self._listening = False
        self._conns: set[_Conn] = set()
        self._rule: Optional[_Rule] = None
        self._rule_timer: Optional[asyncio.TimerHandle] = None
        self._rates: dict[_Way, Optional[float]] = {"up": None, "down": None}
        self._next_free: dict[_Way, float] = {"up": 0.0, "down": 0.0}
        self._counters = _Counters()
        self._error_seq = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.netloc}"

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._lsock = _bind_reserved_port()
        self._port = int(self._lsock.getsockname()[1])
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_thread, args=(ready,), name=f"faultproxy-{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_CONTROL_TIMEOUT):
            raise RuntimeError("FaultProxy loop did not start")
        return self

    def stop(self) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already gone
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(_CONTROL_TIMEOUT)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def _run_thread(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        self._set_listening(True)
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            self._set_listening(False)
            assert self._lsock is not None
            self._lsock.close()
            conns = list(self._conns)
            for conn in conns:
                conn.close(reset=True)
                if conn.task is not None:
                    conn.task.cancel()
            tasks = [c.task for c in conns if c.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ control

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the proxy loop and return its result (thread-safe)."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("FaultProxy is not running")
        if self._thread is threading.current_thread():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(_CONTROL_TIMEOUT)

    def set_mode(
        self,
        fault: Fault,
        *,
        seconds: Optional[float] = None,
        count: Optional[int] = None,
        fraction: Optional[float] = None,
        seed: int = 0,
        match: Optional[str] = None,
    ) -> None:
        """Make ``fault`` the active rule (see the module docstring); ``match``: only for requests
        whose target (path and query) contains it."""
        if sum(x is not None for x in (seconds, count, fraction)) > 1:
            raise ValueError("give at most one of seconds, count, fraction")
        if isinstance(fault, bool) or not isinstance(fault, (int, str)):
            raise ValueError(f"unknown fault {fault!r}")
        if isinstance(fault, int) and not 400 <= fault <= 599:
            raise ValueError(f"HTTP fault status must be 4xx or 5xx, not {fault}")
        if isinstance(fault, str) and fault not in ("pass", *_CONNECTION_FAULTS, *_FORWARDING_FAULTS):
            raise ValueError(f"unknown fault {fault!r}")
        if fault == "refuse" and (count is not None or fraction is not None):
            raise ValueError("'refuse' acts on the listener: use no limit or seconds")
        if seconds is not None and seconds < 0:
            raise ValueError("seconds must be >= 0")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        status = fault if isinstance(fault, int) else None
        self._call(lambda: self._apply_rule(str(fault), status, seconds, count, fraction, seed, match))

    def down(self) -> None:
        """Refuse connections until changed (``up()``/``heal()``/another mode)."""
        self.set_mode("refuse")

    def down_for(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then listen again by itself."""
        self.set_mode("refuse", seconds=seconds)

    def up(self) -> None:
        """Clear the fault rule (listening again); the throttle is kept."""
        self.set_mode("pass")

    def fail_for(self, seconds: float, status: Fault = 503) -> None:
        self.set_mode(status, seconds=seconds)

    def fail_next(self, n: int, status: Fault = 503) -> None:
        self.set_mode(status, count=n)

    def fail_fraction(self, fraction: float, status: Fault = 503, seed: int = 0) -> None:
        self.set_mode(status, fraction=fraction, seed=seed)

    def throttle(self, bytes_per_second: Optional[float], direction: Direction = "both") -> None:
        """Cap forwarding to ``bytes_per_second`` in ``direction``; ``None`` removes caps."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0 (or None)")
        if direction not in ("both", "upload", "download"):
            raise ValueError(f"unknown direction {direction!r}")

        def apply() -> None:
            if bytes_per_second is None:
                self._rates = {"up": None, "down": None}
                return
            if direction in ("both", "upload"):
                self._rates["up"] = float(bytes_per_second)
            if direction in ("both", "download"):
                self._rates["down"] = float(bytes_per_second)

        self._call(apply)

    def heal(self) -> None:
        """No fault rule, no throttle, listening."""
        self.throttle(None)
        self.set_mode("pass")

    def stats(self) -> Stats:
        def snapshot() -> Stats:
            c = self._counters
            return Stats(
                connections=c.connections,
                requests=c.requests,
                by_method=dict(c.by_method),
                faults=c.faults,
                by_fault=dict(c.by_fault),
                forwarded=c.forwarded,
                bytes_up=c.bytes_up,
                bytes_down=c.bytes_down,
            )

        return self._call(snapshot)

    def requests(self) -> list[RequestRecord]:
        return self._call(
            lambda: [
                RequestRecord(r.method, r.target, r.fault, r.status)
                for r in self._counters.records
            ]
        )

    def reset_stats(self) -> None:
        def clear() -> None:
            self._counters = _Counters()

        self._call(clear)

    # ------------------------------------------------------- rules (loop thread)

    def _apply_rule(
        self,
        fault: str,
        status: Optional[int],
        seconds: Optional[float],
        count: Optional[int],
        fraction: Optional[float],
        seed: int,
        match: Optional[str] = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._rule_timer is not None:
            self._rule_timer.cancel()
            self._rule_timer = None
        rule = None
        if fault != "pass":
            rule = _Rule(fault, status, remaining=count, fraction=fraction, match=match)
            if fraction is not None:
                rule.rng = random.Random(seed)
            if seconds is not None:
                rule.until = loop.time() + seconds
                self._rule_timer = loop.call_later(seconds, self._expire, rule)
        self._rule = rule
        self._set_listening(fault != "refuse")

    def _expire(self, rule: _Rule) -> None:
        if self._rule is rule:
            self._rule = None
            self._rule_timer = None
            self._set_listening(True)

    def _pick_fault(self, target: str = "") -> Optional[_Rule]:
        rule = self._rule
        if rule is None or (rule.match is not None and rule.match not in target):
            return None
        if rule.until is not None and asyncio.get_running_loop().time() >= rule.until:
            self._expire(rule)
            return None
        if rule.remaining is not None:
            if rule.remaining <= 0:
                return None
            rule.remaining -= 1
        if rule.rng is not None and rule.fraction is not None:
            return rule if rule.rng.random() < rule.fraction else None
        return rule

    def _set_listening(self, on: bool) -> None:
        lsock = self._lsock
        if lsock is None or on == self._listening:
            return
        self._listening = on
        if on:
            lsock.listen(128)
            self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop(lsock))
            return
        if self._accept_task is not None:
            self._accept_task.cancel()
            self._accept_task = None
        # On Linux, shutdown() stops a listening socket (pending and new connects are
        # refused) while an explicitly bound port stays reserved for the next listen().
        with contextlib.suppress(OSError):
            lsock.shutdown(socket.SHUT_RDWR)
        for conn in list(self._conns):
            conn.close(reset=True)

    # ------------------------------------------------------ traffic (loop thread)

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self._counters.connections += 1
            conn = _Conn()
            self._conns.add(conn)
            conn.task = loop.create_task(self._serve(conn, sock))

    async def _serve(self, conn: _Conn, sock: socket.socket) -> None:
        try:
            conn.reader, conn.writer = await asyncio.open_connection(sock=sock, limit=_HEAD_LIMIT)
            while await self._exchange(conn):
                pass
        except (OSError, EOFError, asyncio.LimitOverrunError, _ProtocolError, ValueError):
            pass
        finally:
            self._conns.discard(conn)
            if conn.writer is None:
                sock.close()
            conn.close()

    async def _exchange(self, conn: _Conn) -> bool:
        """Handle one request on ``conn``; return whether to keep the connection."""
        assert conn.reader is not None and conn.writer is not None
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request = _parse(head, request=True)
        method, target, version = request.start
        counters = self._counters
        counters.requests += 1
        counters.by_method[method] = counters.by_method.get(method, 0) + 1
        record = _Record(method, target)
        counters.records.append(record)
        keep_alive = request.keep_alive(version)
        framing = request.framing()
        if framing == "eof":  # a request without length has no body; unknown coding: give up
            framing = 0 if request.get("transfer-encoding") is None else "eof"

        rule = self._rule
        carries_data = method == "PUT" and isinstance(framing, int) and framing > 0
        if rule is not None and rule.fault == "corrupt" and not carries_data:
            rule = None  # only data-carrying PUTs are damaged (and counted)
        else:
            rule = self._pick_fault(target)
        if rule is None or rule.fault in _FORWARDING_FAULTS:
            counters.forwarded += 1
            if rule is not None:
                record.fault = rule.fault
                counters.faults += 1
                counters.by_fault[rule.fault] = counters.by_fault.get(rule.fault, 0) + 1
            fault = rule.fault if rule is not None else None
            return await self._forward(conn, head, method, framing, keep_alive, record, fault)

        fault = "reset" if rule.fault == "refuse" else rule.fault
        record.fault = fault
        counters.faults += 1
        counters.by_fault[fault] = counters.by_fault.get(fault, 0) + 1
        if fault == "reset":
            conn.close(reset=True)
            return False
        if fault == "close":
            return False
        if fault == "stall":
            while await conn.reader.read(_CHUNK):
                pass
            return False
        assert rule.status is not None
        record.status = rule.status
        if "100-continue" in request.tokens("expect") or framing == "eof":
            await self._send_error(conn.writer, rule.status, method, target, keep_alive=False)
            await self._lingering_close(conn)
            return False
        await self._relay_body(conn.reader, None, framing, "up")
        await self._send_error(conn.writer, rule.status, method, target, keep_alive)
        return keep_alive

    async def _forward(
        self,
        conn: _Conn,
        head: bytes,
        method: str,
        framing: Union[int, Literal["chunked", "eof"]],
        keep_alive: bool,
        record: _Record,
        fault: Optional[str] = None,
    ) -> bool:
        assert conn.reader is not None and conn.writer is not None
        if conn.up_reader is not None and conn.up_reader.at_eof():
            conn.drop_upstream()
        if conn.up_reader is None:
            try:
                conn.up_reader, conn.up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port, limit=_HEAD_LIMIT
                )
            except OSError:
                record.status = 502
                await self._send_error(conn.writer, 502, method, record.target, False)
                await self._lingering_close(conn)
                return False
        up_reader, up_writer = conn.up_reader, conn.up_writer
        assert up_writer is not None
        await self._emit(up_writer, head, "up")
        body = asyncio.ensure_future(
            self._relay_body(conn.reader, up_writer, framing, "up", flip=fault == "corrupt")
        )
        response = asyncio.ensure_future(
            self._relay_response(up_reader, conn.writer, method, keep_alive, record, fault == "no-etag")
        )
        try:
            done, _ = await asyncio.wait({body, response}, return_when=asyncio.FIRST_COMPLETED)
            if body in done:
                body.result()
                client_keep, upstream_keep = await response
            else:
                client_keep, upstream_keep = response.result()
                if not body.done():  # answered before the request body was complete
                    return False
                body.result()
        finally:
            for task in (body, response):
                if not task.done():
                    task.cancel()
            await asyncio.gather(body, response, return_exceptions=True)
        if not upstream_keep:
            conn.drop_upstream()  # the next request on this connection opens a new one
        return client_keep

    async def _relay_response(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        method: str,
        keep_alive: bool,
        record: _Record,
        drop_etag: bool = False,
    ) -> tuple[bool, bool]:
        """Relay one response (after any 1xx).

        Connection handling is hop by hop: the client connection is kept alive whenever the
        client wants it and the response has a defined length, even if the upstream closes
        its side (the moto server does after every response). Returns whether to keep the
        client connection and the upstream connection.
        """
        while True:
            head = await src.readuntil(b"\r\n\r\n")
            response = _parse(head, request=False)
            status = int(response.start[1])
            if not 100 <= status < 200:
                break
            if status == 101:
                raise _ProtocolError("protocol upgrades are not supported")
            await self._emit(dst, head, "down")
        record.status = status
        no_body = method == "HEAD" or status in (204, 304)
        framing = 0 if no_body else response.framing()
        version = response.start[0]
        upstream_keep = framing != "eof" and response.keep_alive(version)
        client_keep = keep_alive and framing != "eof" and version == "HTTP/1.1"
        await self._emit(dst, _hop_by_hop(head, client_keep, drop_etag), "down")
        await self._relay_body(src, dst, framing, "down")
        return client_keep, upstream_keep

    async def _relay_body(
        self,
        src: asyncio.StreamReader,
        dst: Optional[asyncio.StreamWriter],
        framing: Union[int, Literal["chunked", "eof"]],
        way: _Way,
        flip: bool = False,
    ) -> None:
        """Copy (or discard, if ``dst`` is None) one message body, framing included; ``flip``:
        a length-framed body's first byte inverted on the way."""
        if framing == "eof":
            while data := await src.read(self._chunk(way)):
                await self._emit(dst, data, way)
            return
        if framing != "chunked":
            await self._copy_exact(src, dst, framing, way, flip)
            return
        while True:
            line = await src.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _ProtocolError(f"bad chunk size line {line!r}") from exc
            await self._emit(dst, line, way)
            if size == 0:
                while True:  # trailer section, ends with an empty line
                    trailer = await src.readuntil(b"\r\n")
                    await self._emit(dst, trailer, way)
                    if trailer == b"\r\n":
                        return
            await self._copy_exact(src, dst, size + 2, way)

    async def _copy_exact(
        self,
        src: asyncio.StreamReader,
        dst: Optional[asyncio.StreamWriter],
        n: int,
        way: _Way,
        flip: bool = False,
    ) -> None:
        while n > 0:
            data = await src.read(min(n, self._chunk(way)))
            if not data:
                raise asyncio.IncompleteReadError(b"", n)
            if flip:
                data, flip = bytes([data[0] ^ 0xFF]) + data[1:], False
            n -= len(data)
            await self._emit(dst, data, way)

    def _chunk(self, way: _Way) -> int:
        rate = self._rates[way]
        return _CHUNK if rate is None else max(512, min(64 * 1024, int(rate / 20)))

    async def _emit(self, dst: Optional[asyncio.StreamWriter], data: bytes, way: _Way) -> None:
        """Pace ``data`` to the throttle of ``way``, count it, and write it to ``dst``."""
        rate = self._rates[way]
        if rate is not None:
            now = asyncio.get_running_loop().time()
            start = max(now, self._next_free[way])
            self._next_free[way] = start + len(data) / rate
            await asyncio.sleep(self._next_free[way] - now)
        if way == "up":
            self._counters.bytes_up += len(data)
        else:
            self._counters.bytes_down += len(data)
        if dst is not None:
            dst.write(data)
            await dst.drain()

    async def _send_error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        method: str,
        target: str,
        keep_alive: bool,
    ) -> None:
        self._error_seq += 1
        request_id = f"FAULTPROXY{self._error_seq:08d}"
        code, message = _S3_ERRORS.get(status, ("InjectedFault", "Injected fault."))
        resource = _xml_escape(target.split("?", 1)[0])
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        try:
            reason = "Slow Down" if status == 503 else http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Injected Fault"
        payload = b"" if method == "HEAD" else body
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"x-amz-request-id: {request_id}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        ).encode()
        await self._emit(writer, head + payload, "down")

    async def _lingering_close(self, conn: _Conn) -> None:
        """Half-close, then drain what the client still sends (bounded), so it sees the reply."""
        assert conn.reader is not None and conn.writer is not None
        with contextlib.suppress(OSError):
            if conn.writer.can_write_eof():
                conn.writer.write_eof()

        async def drain() -> None:
            assert conn.reader is not None
            while await conn.reader.read(_CHUNK):
                pass

        with contextlib.suppress(asyncio.TimeoutError, OSError):
            await asyncio.wait_for(drain(), _LINGER_TIMEOUT)


def _hop_by_hop(head: bytes, keep_alive: bool, drop_etag: bool = False) -> bytes:
    """``head`` with the upstream's Connection/Keep-Alive headers replaced by the proxy's (and
    without its ETag when ``drop_etag``)."""
    lines = head[:-4].split(b"\r\n")
    dropped = (b"connection", b"keep-alive", *((b"etag",) if drop_etag else ()))
    kept = [line for line in lines if line.split(b":", 1)[0].strip().lower() not in dropped]
    if not keep_alive:
        kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bind_reserved_port(attempts: int = 20) -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on an explicitly chosen free port, not yet listening.

    Binding an explicit port (rather than port 0) keeps the port reserved across the
    shutdown()/listen() cycles used for "refuse".
    """
    last: Optional[OSError] = None
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setblocking(False)
        return sock
    raise RuntimeError(f"no free port on 127.0.0.1: {last}")
