"""The HTTP plumbing shared by pg_ves' mock servers (sink.py, platforms.py,
sequencer.py): reading a request body, a threaded keep-alive server that
hands each request to a mock's handle() and writes its Reply, and the
atomic port file. Standard library only."""

import os
import socket
import struct
import sys
import threading
import time
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# SO_LINGER with a zero timeout: close() sends RST instead of FIN.
LINGER_ZERO = struct.pack("ii", 1, 0)


def read_http_body(handler):
    """The request body of a BaseHTTPRequestHandler: chunked or by
    Content-Length."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        out = bytearray()
        while True:
            line = handler.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                          b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline(65537)
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n > 0 else b""


def reset_connection(handler):
    """Drops the connection with a TCP reset, as a crashed peer would."""
    handler.close_connection = True
    sock = handler.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    os.close(sock.detach())


class MockHandler(BaseHTTPRequestHandler):
    """Passes every request to server.mock.handle(method, path, headers,
    body, peer), which returns a reply with .status, .headers (pairs),
    .reset, .body() and optionally .content_type() and .delay (ms)."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self):
        super().setup()
        # Without it a keep-alive client stalls on delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def server_version(self):
        return self.server.server_name_header

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s: %s - %s\n" % (
                self.server.label, self.address_string(), fmt % args))

    def handle_any(self):
        body = read_http_body(self)
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        reply = self.server.mock.handle(
            self.command, self.path, headers, body,
            "%s:%d" % self.client_address[:2])
        if reply.reset:
            reset_connection(self)
            return
        delay = getattr(reply, "delay", 0)
        if delay:
            import time
            time.sleep(delay / 1000.0)
        data = reply.body()
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = ["HTTP/1.1 %d %s" % (reply.status, phrase),
                 "Server: " + self.server.server_name_header,
                 "Content-Length: %d" % len(data)]
        if data:
            content_type = getattr(reply, "content_type", None)
            lines.append("Content-Type: " + (
                content_type() if content_type else "application/json"))
        lines += ["%s: %s" % kv for kv in reply.headers]
        if self.close_connection:
            lines.append("Connection: close")
        self.log_request(reply.status)
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                         + (b"" if self.command == "HEAD" else data))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class MockServer(ThreadingHTTPServer):
    """A threaded server for one mock: serve(address, mock, label, name)."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address, mock, label, server_name_header,
                 verbose=False):
        super().__init__(address, MockHandler)
        self.mock = mock
        self.label = label
        self.server_name_header = server_name_header
        self.verbose = verbose

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


class RequestLog:
    """A mock's record of the requests it answered: about the last
    max_records (0: all) in self.records, numbered by self.seq, and each
    appended as a JSON line to the file open_log names. Call
    init_request_log() from __init__ and clear_records() from reset()."""

    def init_request_log(self):
        self.log_fd = None
        self.log_lock = threading.Lock()
        self.max_records = 0

    def clear_records(self):
        self.records = []
        self.seq = 0

    def open_log(self, path):
        if path:
            self.log_fd = os.open(path, os.O_WRONLY | os.O_APPEND |
                                  os.O_CREAT, 0o644)

    def add_record(self, method, target, headers, body, peer, reply):
        """Records one answered request (the caller holds the mock's lock);
        returns the record for write_record."""
        self.seq += 1
        rec = {"seq": self.seq, "time": time.time(), "method": method,
               "path": target, "headers": headers,
               "body": body.decode("utf-8", "replace"), "peer": peer,
               "status": None if reply.reset else reply.status,
               "outcome": reply.outcome,
               "answer": None if reply.reset else
               reply.body().decode("utf-8", "replace")}
        self.records.append(rec)
        # Trimmed a quarter at a time, not one record per request.
        if self.max_records and \
                len(self.records) > self.max_records + max(1, self.max_records // 4):
            del self.records[:len(self.records) - self.max_records]
        return rec

    def write_record(self, rec):
        """Appends rec to the log file, if one is open (outside the lock)."""
        if self.log_fd is not None:
            line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
            with self.log_lock:
                while line:
                    line = line[os.write(self.log_fd, line):]


class ControlError(ValueError):
    """A control request the mock refuses (answered 400)."""


def parse_fault_spec(spec, kinds):
    """The fields every mock's faults share, checked: (kind, times, path,
    status). times None means unlimited; path None, every path."""
    if not isinstance(spec, dict):
        raise ControlError("fault must be a JSON object")
    kind = spec.get("kind")
    if kind not in kinds:
        raise ControlError("kind must be one of %s" % (kinds,))
    times = spec.get("times", 1)
    if times is not None:
        times = int(times)
        if times < 1:
            raise ControlError("times must be >= 1 (or null: unlimited)")
    path = spec.get("path")
    if path is not None and (not isinstance(path, str) or
                             not path.startswith("/")):
        raise ControlError("path must be a string starting with /")
    status = int(spec.get("status", 503))
    if kind == "5xx" and not 500 <= status <= 599:
        raise ControlError("status must be within 500..599")
    return kind, times, path, status


def write_atomic(path, text):
    """Writes text to path so that a reader never sees half of it."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def start_server(argv, port_file, what, timeout=10):
    """Starts a server process (the mocks' self-tests) and waits for it to
    write its port file; returns (process, the file's text). Raises if the
    process exits or the file does not appear within `timeout` seconds."""
    import subprocess
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise RuntimeError("%s did not start" % what)
        time.sleep(0.01)
    with open(port_file) as f:
        return proc, f.read()
