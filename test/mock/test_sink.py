"""Self-test for the pg_ves mock HTTP sink (test/mock/sink.py).

Run with any of:
    python3 test/mock/test_sink.py
    python3 -m unittest discover -s test/mock
    cd test/mock && python3 -m unittest test_sink

Every test runs against both engines (asyncio and threaded).  Takes a few
seconds.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mockhttp import start_server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = os.path.join(HERE, "sink.py")


class SinkCase:
    ENGINE = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pg_ves_sink_test_")
        cls.port_file = os.path.join(cls.tmp, "port")
        cls.log = os.path.join(cls.tmp, "requests.jsonl")
        cls.proc, port = start_server(
            [sys.executable, SINK, "--port", "0", "--port-file", cls.port_file,
             "--log", cls.log, "--quiet", "--engine", cls.ENGINE], cls.port_file, "sink")
        cls.port = int(port)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        try:
            rc = cls.proc.wait(timeout=5)
        finally:
            if cls.proc.poll() is None:
                cls.proc.kill()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("sink exited with %r on SIGTERM" % rc)

    def setUp(self):
        self.post_json("/_reset", {})

    # -- helpers -----------------------------------------------------------
    def conn(self, timeout=5):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def call(self, method, path, body=None, headers=None, conn=None):
        c = conn or self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r, data

    def post_json(self, path, obj):
        r, data = self.call("POST", path, json.dumps(obj).encode(),
                            {"Content-Type": "application/json"})
        return r.status, json.loads(data)

    def control(self, **spec):
        status, obj = self.post_json("/_control", spec)
        self.assertEqual(status, 200, obj)

    def requests(self, after=0):
        r, data = self.call("GET", "/_requests?after=%d" % after)
        self.assertEqual(r.status, 200)
        return json.loads(data)

    def raw(self, data, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(data)
        return s

    # -- tests -------------------------------------------------------------
    def test_keepalive(self):
        c = self.conn()
        c.request("GET", "/_requests/count")
        c.getresponse().read()
        sock = c.sock
        for i in range(5):
            r, data = self.call("POST", "/ka", b'{"i":%d}' % i, conn=c)
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(data), {"ok": True})
            self.assertEqual(r.getheader("Content-Length"), str(len(data)))
            self.assertIs(c.sock, sock, "connection was not kept alive")
        c.close()
        recs = self.requests()["requests"]
        self.assertEqual(len(recs), 5)
        self.assertEqual(len({r["peer"] for r in recs}), 1)

    def test_recording_and_order(self):
        c = self.conn()
        t0 = time.time()
        for i in range(10):
            self.call("POST", "/events/x?q=%d" % i, ('{"n":%d}' % i).encode(),
                      {"Content-Type": "application/json",
                       "X-Pg-Ves-Test": "v%d" % i}, conn=c)
        self.call("PUT", "/other", b"", conn=c)
        c.close()
        out = self.requests()
        self.assertEqual(out["count"], 11)
        recs = out["requests"]
        self.assertEqual([r["seq"] for r in recs], list(range(1, 12)))
        for i, r in enumerate(recs[:10]):
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["path"], "/events/x?q=%d" % i)
            self.assertEqual(json.loads(r["body"]), {"n": i})
            self.assertEqual(r["headers"]["x-pg-ves-test"], "v%d" % i)
            self.assertEqual(r["headers"]["content-type"], "application/json")
            self.assertEqual(r["mode"], "ok")
            self.assertEqual(r["status"], 200)
            self.assertGreaterEqual(r["time"], t0 - 1)
        times = [r["time"] for r in recs]
        self.assertEqual(times, sorted(times))
        self.assertEqual(recs[10]["method"], "PUT")
        after = self.requests(after=8)
        self.assertEqual([r["seq"] for r in after["requests"]], [9, 10, 11])
        self.assertEqual(after["count"], 11)
        r, data = self.call("GET", "/_requests/count")
        self.assertEqual(json.loads(data), {"count": 11})
        # --log has one JSON line per recorded request
        with open(self.log) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual([x["body"] for x in lines[-11:]],
                         [r["body"] for r in recs])

    def test_status_times_retry_after(self):
        self.control(mode="status", status=503, retry_after="2", times=2,
                     path="/s")
        c = self.conn()
        got = []
        for _ in range(3):
            r, _ = self.call("POST", "/s/1", b"{}", conn=c)
            got.append((r.status, r.getheader("Retry-After")))
        r, _ = self.call("POST", "/elsewhere", b"{}", conn=c)
        c.close()
        self.assertEqual(got, [(503, "2"), (503, "2"), (200, None)])
        self.assertEqual(r.status, 200)
        recs = self.requests()["requests"]
        self.assertEqual([(x["mode"], x["status"]) for x in recs],
                         [("status", 503), ("status", 503), ("ok", 200),
                          ("ok", 200)])
        # without "times" the status sticks until changed
        self.control(mode="status", status=429)
        for _ in range(2):
            r, _ = self.call("POST", "/any", b"{}")
            self.assertEqual(r.status, 429)
            self.assertIsNone(r.getheader("Retry-After"))
        self.control(mode="ok")
        r, _ = self.call("POST", "/any", b"{}")
        self.assertEqual(r.status, 200)

    def test_every_nth(self):
        # every 3rd request under /e fails; the others fall through to the
        # less specific rule for / (a 202 here), never to the failing one
        self.control(mode="status", status=202, path="/")
        self.control(mode="status", status=500, every=3, path="/e")
        got = [self.call("POST", "/e/%d" % i, b"{}")[0].status
               for i in range(7)]
        self.assertEqual(got, [202, 202, 500, 202, 202, 500, 202])
        self.assertEqual(self.call("POST", "/x", b"{}")[0].status, 202)

    def test_reset_mode(self):
        self.control(mode="reset", path="/r")
        with self.assertRaises(ConnectionError):
            self.call("POST", "/r/1", b'{"x":1}')
        # a raw client must see a real RST, not a clean EOF
        body = b'{"x":2}'
        s = self.raw(b"POST /r/2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                     b"\r\n\r\n%s" % (len(body), body))
        try:
            with self.assertRaises(ConnectionResetError):
                while s.recv(4096):
                    pass
        finally:
            s.close()
        r, _ = self.call("POST", "/fine", b"{}")
        self.assertEqual(r.status, 200)
        recs = self.requests()["requests"]
        self.assertEqual([(x["path"], x["mode"], x["status"]) for x in recs],
                         [("/r/1", "reset", None), ("/r/2", "reset", None),
                          ("/fine", "ok", 200)])
        self.assertEqual(recs[1]["body"], '{"x":2}')

    def test_slow_and_hang(self):
        self.control(mode="slow", delay_ms=300, path="/slow")
        t = time.monotonic()
        r, _ = self.call("POST", "/slow", b"{}")
        el = time.monotonic() - t
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(el, 0.29)
        self.assertLess(el, 2.0)

        self.control(mode="hang", path="/hang")  # default 60 s
        c = self.conn(timeout=0.4)
        t = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.call("POST", "/hang", b'{"h":1}', conn=c)
        self.assertGreaterEqual(time.monotonic() - t, 0.39)
        c.close()
        recs = self.requests()["requests"]
        self.assertEqual([x["mode"] for x in recs], ["slow", "hang"])
        # hang with a short delay answers 200 after it
        self.control(mode="hang", delay_ms=200, path="/hang")
        t = time.monotonic()
        r, _ = self.call("POST", "/hang", b"{}")
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - t, 0.19)

    def test_reset_releases_hung_requests(self):
        self.control(mode="hang", path="/h")
        c = self.conn(timeout=5)
        c.request("POST", "/h", body=b"{}")
        time.sleep(0.2)
        t = time.monotonic()
        self.post_json("/_reset", {})
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t, 2.0)
        c.close()

    def test_path_prefixes(self):
        self.control(mode="status", status=500)
        self.control(mode="status", status=502, path="/a")
        self.control(mode="ok", path="/a/b")
        want = {"/x": 500, "/a": 502, "/a/x": 502, "/a/b": 200,
                "/a/b/c": 200, "/ab": 502}
        for path, status in want.items():
            r, _ = self.call("POST", path, b"{}")
            self.assertEqual(r.status, status, path)
        r, data = self.call("GET", "/_control")
        self.assertEqual([x["path"] for x in json.loads(data)["rules"]],
                         ["/", "/a", "/a/b"])
        # "clear" drops one rule; the less specific one applies again
        self.control(clear=True, path="/a/b")
        r, _ = self.call("POST", "/a/b", b"{}")
        self.assertEqual(r.status, 502)
        # "times" used up on /a falls back to the global rule
        self.control(mode="status", status=503, path="/a", times=1)
        self.assertEqual(self.call("POST", "/a/1", b"{}")[0].status, 503)
        self.assertEqual(self.call("POST", "/a/1", b"{}")[0].status, 500)

    def test_reset_endpoint(self):
        self.control(mode="status", status=500)
        self.call("POST", "/x", b"{}")
        self.assertEqual(self.requests()["count"], 1)
        status, obj = self.post_json("/_reset", {})
        self.assertEqual((status, obj), (200, {"ok": True}))
        self.assertEqual(self.requests(), {"requests": [], "count": 0})
        r, _ = self.call("POST", "/x", b"{}")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.requests()["requests"][0]["seq"], 1)

    def test_bad_control(self):
        for spec in ({"mode": "nope"}, {"mode": "status", "status": 42},
                     {"mode": "ok", "path": "x"}):
            status, obj = self.post_json("/_control", spec)
            self.assertEqual(status, 400, spec)
        r, _ = self.call("POST", "/_control", b"not json")
        self.assertEqual(r.status, 400)
        # a malformed request line gets a 400 (http.server sends it without
        # a status line) and is not recorded
        s = self.raw(b"GARBAGE\r\n\r\n")
        try:
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        self.assertIn(b"400", got)
        self.assertEqual(self.requests()["count"], 0)

    def test_expect_continue_and_chunked(self):
        body = b'{"big":"' + b"x" * 2000 + b'"}'
        s = self.raw(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Expect: 100-continue\r\n\r\n" % len(body))
        try:
            got = s.recv(4096)
            self.assertTrue(got.startswith(b"HTTP/1.1 100"), got)
            s.sendall(body)
            got = b""
            while b'{"ok":true}' not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk)
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
            # chunked request body on the same connection
            s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                      b"chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
            got = b""
            while b'{"ok":true}' not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk)
                got += chunk
        finally:
            s.close()
        recs = self.requests()["requests"]
        self.assertEqual([(x["path"], x["body"]) for x in recs],
                         [("/e", body.decode()), ("/c", '{"a":1}')])

    def test_pipelined_behind_slow(self):
        # A second request sent before the slow answer must be answered
        # after it, in order.
        self.control(mode="slow", delay_ms=200, path="/slow")
        req = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        s = self.raw(req % b"/slow" + req % b"/fast")
        try:
            got = b""
            while got.count(b'{"ok":true}') < 2:
                chunk = s.recv(4096)
                self.assertTrue(chunk)
                got += chunk
        finally:
            s.close()
        self.assertEqual([x["path"] for x in self.requests()["requests"]],
                         ["/slow", "/fast"])


class AsyncioEngineTest(SinkCase, unittest.TestCase):
    ENGINE = "asyncio"


class ThreadedEngineTest(SinkCase, unittest.TestCase):
    ENGINE = "threaded"


if __name__ == "__main__":
    unittest.main()
