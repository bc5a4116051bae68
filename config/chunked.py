"""Request bodies sent with ``Transfer-Encoding: chunked`` (no Content-Length), under gunicorn and the
development server.

Django reads a request body only up to its Content-Length, so a chunked body used to look empty. Both
servers now hand Django a body of known length, bounded by ``API_MAX_BODY_BYTES``:

* gunicorn de-chunks ``wsgi.input`` itself (and says so with ``wsgi.input_terminated``):
  :class:`ChunkedBodyMiddleware`, which wraps the WSGI application, reads it to its end.
* the development server does not: :class:`ChunkedRequestHandler` decodes the chunks off the socket
  (``manage.py runserver`` uses it; see ``config/management/commands/runserver.py``).

Past the limit the body is cut at ``limit + 1`` bytes, the Content-Length says so, and
``ProblemDetailsMiddleware`` answers 413. The rest of the body is read and dropped (up to
:data:`DRAIN_FACTOR` times the limit) so the client, still sending, receives the 413 instead of a reset
connection. A server that neither de-chunks nor says so gets a 411.
"""

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

DRAIN_FACTOR = 8
_READ = 64 * 1024


def is_chunked(transfer_encoding: str | None) -> bool:
    return "chunked" in (transfer_encoding or "").lower()


def _read_bounded(read: Callable[[int], bytes], limit: int) -> bytes:
    """Up to ``limit + 1`` bytes from a stream that ends; then drain (bounded) what is left."""
    body = bytearray()
    while len(body) <= limit:
        piece = read(min(_READ, limit + 1 - len(body)))
        if not piece:
            return bytes(body)
        body += piece
    drained = 0
    while drained < DRAIN_FACTOR * limit and (piece := read(_READ)):
        drained += len(piece)
    return bytes(body)


class ChunkedBodyMiddleware:
    """WSGI middleware: a de-chunked body of unknown length becomes one of known length."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_chunked(environ.get("HTTP_TRANSFER_ENCODING")) and not environ.get("CONTENT_LENGTH"):
            if not environ.get("wsgi.input_terminated"):
                return _problem(
                    start_response,
                    411,
                    "Length Required",
                    "length_required",
                    "This server cannot read a chunked body; send Content-Length.",
                )
            try:
                body = _read_bounded(environ["wsgi.input"].read, settings.API_MAX_BODY_BYTES)
            except (OSError, ValueError) as exc:  # gunicorn's chunk-parsing errors are IOErrors
                return _problem(
                    start_response, 400, "Bad Request", "malformed_request", f"Malformed chunked body: {exc}"
                )
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def problem_body(status: int, title: str, code: str, detail: str) -> bytes:
    """problem+json before Django is reached (the shape of ``config.errors.problem_response``)."""
    document = {"type": f"https://privilege.example/problems/{code}", "title": title, "status": status}
    return json.dumps({**document, "detail": detail, "code": code}).encode()


def _problem(start_response: Callable[..., Any], status: int, title: str, code: str, detail: str) -> list[bytes]:
    body = problem_body(status, title, code, detail)
    start_response(
        f"{status} {title}",
        [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]


class MalformedChunks(ValueError):
    pass


def decode_chunks(rfile: Any, limit: int) -> bytes:
    """Decode a chunked body off ``rfile`` (RFC 9112 §7.1): up to ``limit + 1`` bytes kept, the rest
    of the body (up to ``DRAIN_FACTOR * limit``) read and dropped, trailers skipped."""
    body = bytearray()
    seen = 0
    while True:
        line = rfile.readline(1026)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise MalformedChunks("bad chunk size line")
        size = int(size_text, 16)
        if size == 0:
            break
        seen += size
        if seen > limit + DRAIN_FACTOR * limit:
            raise MalformedChunks("body far past the limit")
        remaining = size
        while remaining:
            piece = rfile.read(min(remaining, _READ))
            if not piece:
                raise MalformedChunks("truncated chunk")
            remaining -= len(piece)
            if len(body) <= limit:
                body += piece[: limit + 1 - len(body)]
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            raise MalformedChunks("chunk not followed by CRLF")
    for _ in range(100):  # trailer fields, ended by an empty line
        trailer = rfile.readline(8192)
        if trailer in (b"\r\n", b"\n", b""):
            return bytes(body)
    raise MalformedChunks("too many trailer fields")


class _Prefixed(io.RawIOBase):
    """A readable stream that yields ``prefix`` first, then the connection's own stream."""

    def __init__(self, prefix: bytes, rest: Any):
        self._prefix = io.BytesIO(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._prefix.read(size)
        if data or size == 0:
            return data
        return self._rest.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._prefix.readline(size) or self._rest.readline(size)


class ChunkedRequestHandler(WSGIRequestHandler):
    """The development server's request handler, reading chunked bodies as gunicorn does."""

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if not is_chunked(self.headers.get("Transfer-Encoding")):
            return True
        limit = settings.API_MAX_BODY_BYTES
        try:
            body = decode_chunks(self.rfile, limit)
        except MalformedChunks as exc:
            self.close_connection = True
            body = problem_body(400, "Bad Request", "malformed_request", f"Malformed chunked body: {exc}.")
            self.send_response(400)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return False
        del self.headers["Transfer-Encoding"]
        del self.headers["Content-Length"]
        self.headers["Content-Length"] = str(len(body))
        if len(body) > limit:
            self.close_connection = True  # what follows the cut is not a next request
        self.rfile = _Prefixed(body, self.rfile)  # type: ignore[assignment]
        return True


class DevServer(WSGIServer):
    """``WSGIServer`` whose connections are handled by :class:`ChunkedRequestHandler`."""

    def __init__(self, server_address: Any, handler: Any, *args: Any, **kwargs: Any):
        super().__init__(server_address, ChunkedRequestHandler, *args, **kwargs)
