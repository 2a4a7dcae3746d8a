"""Serving the metrics: an HTTP endpoint, one scrape to stdout, a textfile for node_exporter.

``serve(address, port, holder)`` answers ``GET /metrics`` (Prometheus text, or OpenMetrics
when the scraper's Accept header asks for it) and ``GET /`` (a page with a link), from a
background thread. A body is rendered once per published snapshot and format and reused by
the scrapes that follow until the next one. Everything else is 404 (unknown path) or 405 (other method); error bodies
are fixed texts and the request is never echoed or logged. Connections are served by a small
bounded pool: a scraper that stalls holds one worker for at most ``TIMEOUT_S`` and, with every
worker busy, further connections get an immediate 503 instead of a new thread.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Final

from prometheus_client import exposition
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import CollectorRegistry

from txtop.core.model import Snapshot
from txtop.exporters.metrics import DEFAULT_HISTOGRAMS, MetricsHolder

DEFAULT_ADDRESS: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9466
WORKERS: Final = 4  # connections served at once; more get an immediate 503
TIMEOUT_S: Final = 5.0  # a connection idle this long (slow or stuck scraper) is closed
DEADLINE_S: Final = 15.0  # and one is cut after this long whatever it does (a trickling one)
FORMATS: Final = ("prometheus", "openmetrics")

PROMETHEUS_TYPE: Final = exposition.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS_TYPE: Final = om_exposition.CONTENT_TYPE_LATEST

INDEX_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>txtop exporter</title></head>\n"
    b"<body><h1>txtop exporter</h1>\n"
    b"<p>The Linux transmit path (BQL, qdiscs, softirqs, TX-path stage latency) as "
    b"Prometheus metrics: <a href='/metrics'>/metrics</a></p>\n</body></html>\n"
)


class ExporterError(Exception):
    """A one-line reason the exporter cannot start (the CLI prints it and exits 2)."""


# ---- rendering ---------------------------------------------------------------------------------


def _holder_of(data: Snapshot | MetricsHolder, histograms: str) -> MetricsHolder:
    if isinstance(data, MetricsHolder):
        return data
    holder = MetricsHolder(histograms)
    holder.publish(data)
    return holder


def _encoder(fmt: str) -> Callable[[CollectorRegistry], bytes]:
    if fmt == "openmetrics":
        return om_exposition.generate_latest
    if fmt == "prometheus":
        return exposition.generate_latest
    raise ValueError(f"unknown metrics format {fmt!r} (choose from {', '.join(FORMATS)})")


def render(registry: CollectorRegistry, fmt: str) -> bytes:
    """One scrape of ``registry`` in ``fmt`` ("prometheus" or "openmetrics")."""
    return _encoder(fmt)(registry)


def render_once(
    data: Snapshot | MetricsHolder, fmt: str = "openmetrics", histograms: str = DEFAULT_HISTOGRAMS
) -> bytes:
    """One scrape as bytes, for ``txtop --once --format openmetrics|prometheus``.

    Given a snapshot, its counters are that snapshot's cumulative values and its histograms
    hold that snapshot's packets; given a holder, whatever it has accumulated.
    """
    encode = _encoder(fmt)  # a bad format is refused before a snapshot is accounted
    return encode(_holder_of(data, histograms).registry)


# ---- textfile ----------------------------------------------------------------------------------


def _textfile_error(target: Path, exc: OSError) -> ExporterError:
    return ExporterError(f"textfile {target}: {exc.strerror or exc}")


def _check_name(target: Path, *, allow_hidden: bool) -> None:
    """A name ending in .prom (and not starting with a dot unless ``allow_hidden``)."""
    if target.suffix != ".prom" or (not allow_hidden and target.name.startswith(".")):
        raise ExporterError(
            f"textfile {target}: the name must end in .prom (node_exporter reads only those)"
        )


def _existing_mode(target: Path) -> int | None:
    """The permission bits of ``target`` when it is a regular file, None when it does not
    exist. Raises ExporterError when it is something else or cannot be looked at."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _textfile_error(target, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise ExporterError(f"textfile {target}: exists and is not a regular file")
    return stat.S_IMODE(st.st_mode)


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A new hidden temporary file (mode 0600) in ``target``'s directory: (fd, path)."""
    try:
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _textfile_error(target, exc) from None


def check_textfile(path: str | os.PathLike[str]) -> Path:
    """Check at start-up that ``write_textfile`` can write ``path``: a name ending in .prom,
    in an existing directory where a file can be created, not something other than a regular
    file. Writes nothing (a temporary file is created and removed). Raises ExporterError."""
    target = Path(path)
    _check_name(target, allow_hidden=False)
    _existing_mode(target)
    if not target.parent.is_dir():
        raise ExporterError(f"textfile {target}: no such directory {target.parent}")
    fd, tmp = _temporary_beside(target)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return target


class TextfileWriter:
    """Rewrites a textfile (``write_textfile``) from a holder on a thread of its own, so a slow
    disk never holds up the thread that publishes: ``notify()`` after each publish asks for a
    write, and writes that cannot keep up are coalesced (the newest view is written).

    A write that fails is retried on the next notify. ``on_change(line)`` is called with one
    line when writing starts failing, when the reason changes and when it works again (from the
    writer's thread); ``error`` is the current reason ("" while writes succeed).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        holder: MetricsHolder,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.path = check_textfile(path)
        self.holder = holder
        self.on_change = on_change
        self.error = ""
        self.writes = 0
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="txtop-textfile", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set():
                return
            self.write()

    def write(self) -> None:
        """Write the holder's latest view now (nothing before its first snapshot)."""
        if self.holder.view is None:
            return
        try:
            write_textfile(self.path, self.holder)
        except ExporterError as exc:
            if str(exc) != self.error:
                self.error = str(exc)
                self._tell(f"cannot write the textfile: {exc}")
            return
        self.writes += 1
        if self.error:
            self.error = ""
            self._tell(f"textfile {self.path}: written again")

    def _tell(self, line: str) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change(line)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, then write the last view once more (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wanted.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.write()


def write_textfile(
    path: str | os.PathLike[str],
    data: Snapshot | MetricsHolder,
    histograms: str = DEFAULT_HISTOGRAMS,
) -> None:
    """Write one scrape in the Prometheus text format for node_exporter's textfile collector.

    Atomic: written to a new temporary file (mode 0600) in the same directory, flushed, then
    renamed over ``path``, so node_exporter never reads half a file. When ``path`` already
    exists its permission bits are kept (``chmod 0644`` it once when node_exporter runs as
    another user). Raises ExporterError with a one-line reason.
    """
    target = Path(path)
    _check_name(target, allow_hidden=True)
    body = render(_holder_of(data, histograms).registry, "prometheus")
    existing = _existing_mode(target)
    mode = 0o600 if existing is None else existing & 0o666
    fd, tmp = _temporary_beside(target)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _textfile_error(target, exc) from None


# ---- listening address -------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``[ADDR:]PORT`` as the CLI takes it (``9466``, ``0.0.0.0:9466``, ``[::1]:9466``) ->
    (address, port). The address defaults to 127.0.0.1. Raises ExporterError."""
    text = text.strip()
    address, sep, port_text = text.rpartition(":")
    if not sep:
        address = DEFAULT_ADDRESS
    elif address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    elif ":" in address:
        raise ExporterError(f"bad listen address {text!r}: write an IPv6 address as [ADDR]:PORT")
    if not address:
        raise ExporterError(f"bad listen address {text!r}: expected [ADDR:]PORT")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ExporterError(f"bad port in {text!r}: expected 1..65535")
    return address, int(port_text)


def _resolve(address: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The socket family and address to bind. Only IP addresses (and ``localhost``) are taken:
    no name lookup at start-up, which could hang on DNS or bind to a surprise address."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ExporterError(f"bad port {port!r}: expected 0..65535")
    if address == "localhost":
        address = DEFAULT_ADDRESS
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ExporterError(
            f"bad listen address {address[:64]!r}: expected an IP address such as "
            "127.0.0.1, 0.0.0.0 or ::1"
        ) from None
    if ip.version == 6:
        return socket.AF_INET6, (str(ip), port, 0, 0)
    return socket.AF_INET, (str(ip), port)


# ---- the HTTP server ---------------------------------------------------------------------------


def _wants_openmetrics(accept: str) -> bool:
    """Does the Accept header ask for OpenMetrics (any version >= 1, or none given)?

    Only this decision is taken from the request; the content type sent back is one of two
    fixed strings, so nothing of the request reaches the response."""
    for item in accept.split(",")[:32]:
        parts = [p.strip() for p in item.split(";")]
        if parts[0].lower() != "application/openmetrics-text":
            continue
        params = dict(p.partition("=")[::2] for p in parts[1:])
        q = params.get("q", "1")
        version = params.get("version", "1.0.0")
        if q.strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 1:
            return True
    return False


_ERROR_BODIES: Final = {
    HTTPStatus.NOT_FOUND: b"404 not found: try /metrics\n",
    HTTPStatus.METHOD_NOT_ALLOWED: b"405 method not allowed: GET only\n",
    HTTPStatus.SERVICE_UNAVAILABLE: b"503 busy: too many scrapes at once\n",
    HTTPStatus.BAD_REQUEST: b"400 bad request\n",
    HTTPStatus.REQUEST_URI_TOO_LONG: b"414 request line too long\n",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: b"431 headers too large\n",
    HTTPStatus.INTERNAL_SERVER_ERROR: b"500 internal error\n",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = TIMEOUT_S  # socket timeout of the connection (StreamRequestHandler)
    server_version = "txtop"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # The socket timeout bounds each read; this bounds the whole connection, so a client
        # trickling a byte every few seconds cannot keep a worker either.
        self._deadline = threading.Timer(DEADLINE_S, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:  # the name http.server dispatches to
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", INDEX_PAGE)
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _metrics(self) -> None:
        fmt = "openmetrics" if _wants_openmetrics(self.headers.get("Accept", "")) else "prometheus"
        try:
            body = self.server.body(fmt)
        except Exception:  # a bug in a collector: a 500 for this scrape, the server lives on
            self.server.scrape_errors += 1
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self.server.scrapes += 1
        self._send(
            HTTPStatus.OK, OPENMETRICS_TYPE if fmt == "openmetrics" else PROMETHEUS_TYPE, body
        )

    def _not_allowed(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed
    do_TRACE = do_CONNECT = _not_allowed

    def _send(
        self, code: HTTPStatus, content_type: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Fixed status line and body per code: the request (path, method, version text that
        http.server quotes in its own error messages) is never sent back."""
        del message, explain
        status = HTTPStatus(code)
        if status == HTTPStatus.NOT_IMPLEMENTED:  # an unknown method
            status = HTTPStatus.METHOD_NOT_ALLOWED
        body = _ERROR_BODIES.get(status, f"{status.value} {status.phrase.lower()}\n".encode())
        self.close_connection = True
        extra = {"Allow": "GET"} if status == HTTPStatus.METHOD_NOT_ALLOWED else None
        try:
            self.command = "GET"  # always send the body, even to a HEAD or a broken request
            self._send(status, "text/plain; charset=utf-8", body, extra)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # requests are not logged: nothing of them reaches the terminal


class _Server(HTTPServer):
    """HTTPServer that hands connections to a bounded pool and refuses the excess."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 16

    def __init__(
        self, sockaddr: tuple[Any, ...], family: socket.AddressFamily, holder: MetricsHolder
    ) -> None:
        self.address_family = family
        self.holder = holder
        self.scrapes = 0
        self.scrape_errors = 0
        self.refused = 0
        self.renders = 0
        self._cache: dict[str, tuple[object, bytes]] = {}  # fmt -> (view, body)
        self._slots = threading.BoundedSemaphore(WORKERS)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="txtop-metrics")
        super().__init__(sockaddr, _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def body(self, fmt: str) -> bytes:
        """The scrape body in ``fmt``: rendered once per published view and format, then
        served as is until the next snapshot is published (scrapes faster than txtop's
        interval cost nothing more; txtop's own CPU and RSS are then as of the first scrape
        of that interval)."""
        view = self.holder.view
        cached = self._cache.get(fmt)
        if view is not None and cached is not None and cached[0] is view:
            return cached[1]
        body = render(self.holder.registry, fmt)
        self.renders += 1
        if view is not None:
            self._cache[fmt] = (view, body)  # one assignment: safe between worker threads
        return body

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self._refuse(request)
            return
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = _ERROR_BODIES[HTTPStatus.SERVICE_UNAVAILABLE]
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            request.settimeout(0.5)
            request.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        del request, client_address  # a client that went away: nothing to report

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class MetricsServer:
    """A running exporter endpoint. ``close()`` stops it (idempotent)."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.address: str = str(host)
        self.port: int = int(port)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="txtop-metrics-http",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    @property
    def scrapes(self) -> int:
        return self._server.scrapes

    @property
    def refused(self) -> int:
        return self._server.refused

    @property
    def renders(self) -> int:
        """Scrape bodies rendered (fewer than scrapes when several fall in one interval)."""
        return self._server.renders

    def close(self, timeout: float = 2.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(address: str, port: int, holder: MetricsHolder) -> MetricsServer:
    """Listen on ``address``:``port`` (port 0: any free one, see ``.port``) and serve
    ``holder``'s metrics from a background thread. Raises ExporterError with a one-line
    reason (port in use, bad address, port out of range, no permission)."""
    family, sockaddr = _resolve(address, port)
    try:
        server = _Server(sockaddr, family, holder)
    except OSError as exc:
        where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use (another exporter or txtop?)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "not an address of this machine"
        elif exc.errno == errno.EACCES:
            reason = "permission denied"
        else:
            reason = exc.strerror or str(exc)
        raise ExporterError(f"cannot listen on {where}: {reason}") from None
    return MetricsServer(server)


__all__: list[str] = [
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "FORMATS",
    "ExporterError",
    "MetricsServer",
    "TextfileWriter",
    "check_textfile",
    "parse_listen",
    "render",
    "render_once",
    "serve",
    "write_textfile",
]
