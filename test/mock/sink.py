#!/usr/bin/env python3
"""Mock HTTP destination ("sink") for pg_ves tests.

The pg_ves delivery worker POSTs event bodies over HTTP/1.1 keep-alive
connections.  This server records every request it receives and can be told
to misbehave (error statuses, hangs, slow answers, connection resets) so the
TAP tests and bench scripts can exercise the worker's retry and timeout paths.

Standard library only.  See test/mock/README.md for the control API.

Two engines share the same state and control code:
  asyncio  (default) single-threaded event loop with a minimal HTTP/1.1
           parser; several times faster, used for benchmarks.
  threaded http.server.ThreadingHTTPServer, one daemon thread per connection.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mockhttp import LINGER_ZERO, read_http_body  # noqa: E402

MODES = ("ok", "status", "hang", "reset", "slow")
DEFAULT_HANG_MS = 60000
DEFAULT_SLOW_MS = 200
SERVER_NAME = "pg_ves-sink"
OK_BODY = b'{"ok":true}'
MAX_HEAD = 64 * 1024
LOG_ENCODER = json.JSONEncoder(separators=(",", ":"))


# ---------------------------------------------------------------------------
# Shared state: behaviour rules and the request log
# ---------------------------------------------------------------------------

class Rule:
    __slots__ = ("prefix", "mode", "status", "retry_after", "delay_ms", "times",
                 "every", "matched")

    def __init__(self, prefix, mode, status, retry_after, delay_ms, times,
                 every=None):
        self.prefix = prefix
        self.mode = mode
        self.status = status
        self.retry_after = retry_after
        self.delay_ms = delay_ms
        self.times = times  # None = unlimited, else remaining uses
        # None = every request; else only every Nth matching request (the
        # Nth, 2Nth, ...), the others fall through to the next rule.
        self.every = every
        self.matched = 0

    def describe(self):
        return {"path": self.prefix, "mode": self.mode, "status": self.status,
                "retry_after": self.retry_after, "delay_ms": self.delay_ms,
                "times": self.times, "every": self.every}


class Decision:
    """How one request is answered; fixed when it arrives."""

    __slots__ = ("mode", "status", "retry_after", "delay_ms")

    def __init__(self, mode="ok", status=200, retry_after=None, delay_ms=0):
        self.mode = mode
        self.status = status
        self.retry_after = retry_after
        self.delay_ms = delay_ms


DEFAULT_DECISION = Decision()


def parse_rule(spec):
    """Validate a POST /_control body; returns a Rule or raises ValueError."""
    if not isinstance(spec, dict):
        raise ValueError("control body must be a JSON object")
    mode = spec.get("mode", "ok")
    if mode not in MODES:
        raise ValueError("unknown mode %r" % (mode,))
    prefix = spec.get("path") or "/"
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError("path must be a string starting with /")
    status = spec.get("status")
    if status is None:
        status = 500 if mode == "status" else 200
    status = int(status)
    if not 200 <= status <= 599:
        raise ValueError("status must be within 200..599")
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        retry_after = str(retry_after)
    delay_ms = spec.get("delay_ms")
    if delay_ms is None:
        delay_ms = {"hang": DEFAULT_HANG_MS, "slow": DEFAULT_SLOW_MS}.get(mode, 0)
    delay_ms = max(0, int(delay_ms))
    times = spec.get("times")
    if times is not None:
        times = int(times)
        if times < 1:
            raise ValueError("times must be >= 1")
    every = spec.get("every")
    if every is not None:
        every = int(every)
        if every < 1:
            raise ValueError("every must be >= 1")
    return Rule(prefix, mode, status, retry_after, delay_ms, times, every)


class Store:
    """Rules and recorded requests.  Thread-safe."""

    def __init__(self, log_path=None, max_records=0):
        self.lock = threading.Lock()
        # 0 = keep every record; else keep roughly the newest max_records
        # (long benchmarks would otherwise grow by ~1.5 kB per request).
        self.max_records = max_records
        self.trim_at = max_records + max(1, max_records // 4)
        self.rules = {}  # prefix -> Rule
        self.records = []
        self.seq = 0
        self.last_time = 0.0
        # Set (and replaced) by reset() so that requests parked in hang/slow
        # answer at once instead of holding their connection open.
        self.wake = threading.Event()
        self.reset_hooks = []
        # --log: one JSON line per request, written with a single unbuffered
        # write() so that a killed test still leaves every answered request
        # on disk.
        self.log_fd = None
        self.log_lock = threading.Lock()
        if log_path:
            self.log_fd = os.open(log_path,
                                  os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def set_rule(self, rule):
        with self.lock:
            self.rules[rule.prefix] = rule

    def clear_rule(self, prefix):
        with self.lock:
            self.rules.pop(prefix, None)

    def describe_rules(self):
        with self.lock:
            return [self.rules[p].describe() for p in sorted(self.rules)]

    def _decide(self, path):
        # Caller holds self.lock.  The longest matching prefix wins.  A rule
        # with "times" is removed once used up, so later requests fall back
        # to the next less specific rule, or to the default "ok".
        # A rule with "every" applies to every Nth request it matches; the
        # others go on to the next less specific rule.
        best = None
        for rule in sorted((r for p, r in self.rules.items()
                            if path.startswith(p)),
                           key=lambda r: len(r.prefix), reverse=True):
            if rule.every is not None:
                rule.matched += 1
                if rule.matched % rule.every != 0:
                    continue
            best = rule
            break
        if best is None:
            return DEFAULT_DECISION
        if best.times is not None:
            best.times -= 1
            if best.times <= 0:
                del self.rules[best.prefix]
        return Decision(best.mode, best.status, best.retry_after,
                        best.delay_ms)

    def record(self, method, path, headers, body, peer=""):
        """Choose the behaviour for a request and record it; returns it."""
        text = body.decode("utf-8", "replace")
        with self.lock:
            # Wall-clock seconds, taken under the lock and clamped so that
            # "time" never decreases along "seq" even if the clock steps.
            now = time.time()
            if now < self.last_time:
                now = self.last_time
            self.last_time = now
            d = self._decide(path) if self.rules else DEFAULT_DECISION
            self.seq += 1
            rec = {"seq": self.seq, "time": now, "method": method,
                   "path": path, "headers": headers, "body": text,
                   "peer": peer, "mode": d.mode,
                   "status": None if d.mode == "reset" else d.status}
            self.records.append(rec)
            if self.max_records and len(self.records) > self.trim_at:
                del self.records[:len(self.records) - self.max_records]
        if self.log_fd is not None:
            line = (LOG_ENCODER.encode(rec) + "\n").encode()
            with self.log_lock:
                if self.log_fd is not None:
                    while line:
                        line = line[os.write(self.log_fd, line):]
        return d

    def requests_after(self, after):
        with self.lock:
            # Records are kept in seq order without gaps (seq restarts at 1
            # on reset); with --max-records the oldest ones may be gone.
            base = self.records[0]["seq"] if self.records else self.seq + 1
            return self.records[max(0, after + 1 - base):], self.seq

    def count(self):
        """Requests received since start or the last reset."""
        with self.lock:
            return self.seq

    def reset(self):
        with self.lock:
            self.records = []
            self.seq = 0
            self.rules = {}
            old, self.wake = self.wake, threading.Event()
        old.set()
        for hook in self.reset_hooks:
            hook()

    def close(self):
        with self.log_lock:
            if self.log_fd is not None:
                os.close(self.log_fd)
                self.log_fd = None


def is_control(path):
    return path.startswith(("/_control", "/_requests", "/_reset"))


def control(store, method, path, body):
    """Serve /_control, /_requests, /_reset.  Returns (status, object)."""
    parts = urlsplit(path)
    route = parts.path.rstrip("/") or "/"
    try:
        if route == "/_requests/count" and method == "GET":
            return 200, {"count": store.count()}
        if route == "/_requests" and method == "GET":
            after = int(parse_qs(parts.query).get("after", ["0"])[0])
            recs, total = store.requests_after(after)
            return 200, {"requests": recs, "count": total}
        if route == "/_reset" and method == "POST":
            store.reset()
            return 200, {"ok": True}
        if route == "/_control" and method == "GET":
            return 200, {"rules": store.describe_rules()}
        if route == "/_control" and method == "POST":
            spec = json.loads(body.decode("utf-8") or "{}")
            if isinstance(spec, dict) and spec.get("clear"):
                store.clear_rule(spec.get("path") or "/")
            else:
                store.set_rule(parse_rule(spec))
            return 200, {"ok": True, "rules": store.describe_rules()}
    except (ValueError, TypeError) as e:
        return 400, {"error": str(e)}
    return 404, {"error": "no such control endpoint"}


def reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def build_response(status, body, extra=(), close=False, head_only=False):
    lines = ["HTTP/1.1 %d %s" % (status, reason(status)),
             "Server: " + SERVER_NAME,
             "Content-Type: application/json",
             "Content-Length: %d" % len(body)]
    for k, v in extra:
        lines.append("%s: %s" % (k, v))
    if close:
        lines.append("Connection: close")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head_only else out + body


def decision_response(d, close=False, head_only=False):
    if d is DEFAULT_DECISION and not close and not head_only:
        return OK_RESPONSE
    body = OK_BODY if d.status < 300 else \
        json.dumps({"ok": False, "status": d.status}).encode()
    extra = [("Retry-After", d.retry_after)] if d.retry_after is not None \
        else ()
    return build_response(d.status, body, extra, close, head_only)


OK_RESPONSE = build_response(200, OK_BODY)


# ---------------------------------------------------------------------------
# asyncio engine
# ---------------------------------------------------------------------------

class BadRequest(Exception):
    pass


class SinkProtocol(asyncio.Protocol):
    """One client connection.  Requests are answered strictly in order; while
    a slow/hang answer is pending, later (pipelined) bytes are only buffered.
    """

    def __init__(self, server):
        self.server = server
        self.store = server.store
        self.buf = bytearray()
        self.req = None        # parsed head of the request being read
        self.busy = False      # a delayed answer is pending
        self.closed = False
        self.timer = None
        self.transport = None
        self.peer = ""

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = "%s:%d" % peer[:2] if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.server.parked.pop(self, None)
            self.timer = None

    def data_received(self, data):
        self.buf += data
        if not self.busy:
            self.run()

    def run(self):
        try:
            self.process()
        except BadRequest as e:
            self.fail(400, str(e))
        except Exception as e:  # a sink bug must not wedge the connection
            sys.stderr.write("sink: internal error: %r\n" % (e,))
            self.fail(500, "internal error")

    def fail(self, status, msg):
        if self.closed:
            return
        body = json.dumps({"error": msg}).encode()
        self.transport.write(build_response(status, body, close=True))
        self.transport.close()
        self.closed = True

    def parse_head(self, head):
        try:
            text = head.decode("latin-1")
            lines = text.split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise BadRequest("bad request line")
        if not version.startswith("HTTP/1."):
            raise BadRequest("unsupported version")
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise BadRequest("bad header line")
            k = k.lower()
            if k in headers:
                headers[k] += ", " + v.strip()
            else:
                headers[k] = v.strip()
        conn = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep = "keep-alive" in conn
        else:
            keep = "close" not in conn
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            length = -1
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                raise BadRequest("bad content-length")
            if length < 0:
                raise BadRequest("bad content-length")
        return [method, target, version, headers, keep, length, False]

    def take_chunked(self):
        """Decode a complete chunked body from self.buf, or return None."""
        buf = self.buf
        pos = 0
        out = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            pos = eol + 2
            if size == 0:
                if buf[pos:pos + 2] == b"\r\n":
                    end = pos + 2
                else:
                    end = buf.find(b"\r\n\r\n", pos)
                    if end < 0:
                        return None
                    end += 4
                del buf[:end]
                return bytes(out)
            if len(buf) < pos + size + 2:
                return None
            out += buf[pos:pos + size]
            pos += size + 2

    def process(self):
        while not self.busy and not self.closed:
            req = self.req
            if req is None:
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise BadRequest("request head too large")
                    return
                if i == 0:  # stray CRLF between requests
                    del self.buf[:4]
                    continue
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                req = self.req = self.parse_head(head.lstrip(b"\r\n"))
            method, target, version, headers, keep, length, continued = req
            if length < 0:
                body = self.take_chunked()
                if body is None:
                    self.expect_continue(req)
                    return
            else:
                if len(self.buf) < length:
                    self.expect_continue(req)
                    return
                body = bytes(self.buf[:length])
                del self.buf[:length]
            self.req = None
            self.dispatch(method, target, headers, body, keep)

    def expect_continue(self, req):
        # libcurl sends "Expect: 100-continue" for larger POST bodies and
        # waits (1 s by default) for this interim answer before the body.
        if not req[6] and "100-continue" in req[3].get("expect", "").lower():
            req[6] = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def dispatch(self, method, target, headers, body, keep):
        head_only = method == "HEAD"
        if is_control(target):
            status, obj = control(self.store, method, target, body)
            self.respond(build_response(status, json.dumps(obj).encode(),
                                        close=not keep, head_only=head_only),
                         keep)
            return
        d = self.store.record(method, target, headers, body, self.peer)
        if self.server.verbose:
            sys.stderr.write("sink: %s %s -> %s\n" % (method, target, d.mode))
        if d.mode == "reset":
            self.abort()
            return
        resp = decision_response(d, close=not keep, head_only=head_only)
        if d.delay_ms:
            self.busy = True
            self.timer = asyncio.get_running_loop().call_later(
                d.delay_ms / 1000.0, self.finish_delayed, resp, keep)
            self.server.parked[self] = (resp, keep)
        else:
            self.respond(resp, keep)

    def finish_delayed(self, resp, keep):
        self.timer = None
        self.server.parked.pop(self, None)
        self.busy = False
        if self.closed:
            return
        self.respond(resp, keep)
        self.run()

    def wake(self):
        # Called by /_reset for a connection parked in hang/slow.
        if self.timer is not None:
            self.timer.cancel()
            resp, keep = self.server.parked.get(self, (OK_RESPONSE, True))
            self.finish_delayed(resp, keep)

    def respond(self, data, keep):
        self.transport.write(data)
        if not keep:
            self.transport.close()
            self.closed = True

    def abort(self):
        # Abortive close: SO_LINGER 0 makes close() send RST, so the client
        # sees "connection reset" rather than a clean EOF.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                LINGER_ZERO)
            except OSError:
                pass
        self.closed = True
        self.transport.abort()


class AsyncSink:
    def __init__(self, store, verbose):
        self.store = store
        self.verbose = verbose
        self.parked = {}  # SinkProtocol -> (response, keep) awaiting timer
        store.reset_hooks.append(self.wake_all)

    def wake_all(self):
        # Runs on the loop thread (from a /_reset request).
        for proto in list(self.parked):
            proto.wake()

    def run(self, host, port, on_listening):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(loop.create_server(
            lambda: SinkProtocol(self), host, port, backlog=1024,
            reuse_address=True))
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(
                sig, lambda: stop.done() or stop.set_result(None))
        on_listening(srv.sockets[0].getsockname()[1])
        try:
            loop.run_until_complete(stop)
        finally:
            srv.close()
            loop.close()


# ---------------------------------------------------------------------------
# threaded engine (http.server)
# ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    sys_version = ""

    def setup(self):
        super().setup()
        # One write per response plus TCP_NODELAY avoids the Nagle /
        # delayed-ACK stall (~40 ms per request) on keep-alive connections.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("sink: %s - %s\n" % (self.address_string(),
                                                  fmt % args))

    def _read_body(self):
        return read_http_body(self)

    def _write(self, status, data):
        self.log_request(status)
        self.wfile.write(data)

    def _handle(self):
        store = self.server.store
        body = self._read_body()
        head_only = self.command == "HEAD"
        if is_control(self.path):
            status, obj = control(store, self.command, self.path, body)
            self._write(status, build_response(
                status, json.dumps(obj).encode(), close=self.close_connection,
                head_only=head_only))
            return
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        wake = store.wake
        d = store.record(self.command, self.path, headers, body,
                         "%s:%d" % self.client_address[:2])
        if d.mode == "reset":
            self.close_connection = True
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
            # Close the descriptor now (rfile/wfile would otherwise keep the
            # socket open until finish()); with SO_LINGER 0 this sends RST.
            os.close(sock.detach())
            return
        if d.delay_ms:
            wake.wait(d.delay_ms / 1000.0)
        self._write(d.status, decision_response(
            d, close=self.close_connection, head_only=head_only))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class ThreadedSink(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def run_threaded(store, verbose, host, port, on_listening):
    srv = ThreadedSink((host, port), Handler)
    srv.store = store
    srv.verbose = verbose

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    on_listening(srv.server_address[1])
    try:
        srv.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        srv.server_close()


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Recording mock HTTP destination for pg_ves tests.")
    ap.add_argument("--port", type=int, default=0,
                    help="TCP port on 127.0.0.1; 0 picks a free one")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file",
                    help="write the port here (atomically) once listening")
    ap.add_argument("--log", help="append every request as a JSON line")
    ap.add_argument("--max-records", type=int, default=0,
                    help="keep only about the newest N records in memory "
                    "(0 = all; counts stay exact)")
    ap.add_argument("--engine", choices=("asyncio", "threaded"),
                    default="asyncio")
    ap.add_argument("--quiet", action="store_true",
                    help="print nothing on startup")
    ap.add_argument("--verbose", action="store_true",
                    help="log each request to stderr")
    args = ap.parse_args(argv)

    store = Store(args.log, args.max_records)

    def on_listening(port):
        if args.port_file:
            tmp = "%s.%d.tmp" % (args.port_file, os.getpid())
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, args.port_file)
        if not args.quiet:
            sys.stderr.write("sink: listening on %s:%d (%s)\n"
                             % (args.host, port, args.engine))
            sys.stderr.flush()

    try:
        if args.engine == "asyncio":
            AsyncSink(store, args.verbose).run(args.host, args.port,
                                               on_listening)
        else:
            run_threaded(store, args.verbose, args.host, args.port,
                         on_listening)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
