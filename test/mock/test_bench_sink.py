"""Self-test for the platform modes of bench/sink.c, the C server that
bench/platforms.sh sets against webhook deliveries' C sink.

Run with:
    python3 test/mock/test_bench_sink.py

Builds bench/sink.c (cc, libsodium) into a temporary directory and checks
that each mode accepts what pg_ves sends (a TikTok Shop request signed as
test/mock/platforms.py's tiktok_sign signs it, an Amazon PATCH with the
token it granted), refuses wrong credentials and counts them, and keeps the
quantities the benchmark compares at its end. Takes about a second.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import quote, urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from mockhttp import start_server  # noqa: E402
from platforms import tiktok_sign  # noqa: E402


class BenchSink:
    """One sink process in a platform mode."""

    def __init__(self, tmp, binary, mode_args):
        own = tempfile.mkdtemp(dir=tmp)
        self.port_file = os.path.join(own, "port")
        self.dump = os.path.join(own, "requests.txt")
        self.proc, port = start_server([binary, self.port_file, self.dump] + mode_args,
                                       self.port_file, "bench/sink.c")
        self.port = int(port)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def call(self, method, target, body=b"", headers=None):
        self.conn.request(method, target, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return r.status, r.read().decode()

    def quantities(self):
        status, refused = self.call("GET", "/quantities")
        with open(self.dump + ".quantities") as f:
            q = {k: int(n) for k, n in (line.split() for line in f)}
        return int(refused), q

    def stop(self):
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class Case(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pg_ves_bench_sink_")
        cls.binary = os.path.join(cls.tmp, "sink")
        subprocess.run(["cc", "-O2", "-o", cls.binary, os.path.join(REPO, "bench", "sink.c"),
                        "-lsodium"], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, *mode_args):
        s = BenchSink(self.tmp, self.binary, list(mode_args))
        self.addCleanup(lambda: self.assertEqual(s.stop(), 0))
        return s


class TikTokMode(Case):
    PATH = "/product/202309/products/7301/inventory/update"
    BODY = json.dumps({"skus": [
        {"id": "8301", "inventory": [{"quantity": 5, "warehouse_id": "7000000000000000001"}]},
        {"id": "8302", "inventory": [{"quantity": 0, "warehouse_id": "W2"},
                                     {"quantity": 12, "warehouse_id": "W3"}]}]},
        separators=(",", ":")).encode()

    def update(self, s, token, secret="tts_app_secret", body=None, shop="ROW pgves"):
        body = self.BODY if body is None else body
        pairs = [("app_key", "tts_app_key"), ("shop_cipher", shop), ("timestamp", "1764000000")]
        target = self.PATH + "?" + urlencode(pairs, quote_via=quote) + "&sign=" + \
            tiktok_sign(secret, self.PATH, pairs, body)
        status, text = s.call("POST", target, body, {"Content-Type": "application/json",
                                                     "x-tts-access-token": token})
        return status, json.loads(text)

    def test_signed_update_is_kept(self):
        s = self.start("tiktok", "tts_app_key", "tts_app_secret", "tok0", "tts_refresh")
        status, answer = self.update(s, "tok0")
        self.assertEqual((status, answer["code"]), (200, 0))
        self.assertEqual(s.quantities(), (0, {"7301/8301@7000000000000000001": 5,
                                              "7301/8302@W2": 0, "7301/8302@W3": 12}))
        self.assertEqual(s.call("GET", "/count"), (200, "1"))

    def test_wrong_sign_body_or_token_is_refused_and_counted(self):
        s = self.start("tiktok", "tts_app_key", "tts_app_secret", "tok0", "tts_refresh")
        status, answer = self.update(s, "tok0", secret="another_secret")
        self.assertEqual((status, answer["code"]), (401, 106001))
        pairs = [("app_key", "tts_app_key"), ("shop_cipher", "ROW pgves"),
                 ("timestamp", "1764000000")]
        target = self.PATH + "?" + urlencode(pairs, quote_via=quote) + "&sign=" + \
            tiktok_sign("tts_app_secret", self.PATH, pairs, self.BODY)
        status, text = s.call("POST", target, self.BODY.replace(b"5", b"6"),
                              {"x-tts-access-token": "tok0"})
        self.assertEqual((status, json.loads(text)["code"]), (401, 106001))
        status, answer = self.update(s, "not-the-token")
        self.assertEqual((status, answer["code"]), (401, 106001))
        self.assertEqual(s.quantities(), (3, {}))

    def test_refreshed_token_is_accepted(self):
        s = self.start("tiktok", "tts_app_key", "tts_app_secret", "tok0", "tts_refresh")
        q = {"app_key": "tts_app_key", "app_secret": "tts_app_secret",
             "refresh_token": "wrong", "grant_type": "refresh_token"}
        status, text = s.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        self.assertEqual((status, json.loads(text)["code"]), (401, 105001))
        q["refresh_token"] = "tts_refresh"
        status, text = s.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        data = json.loads(text)["data"]
        self.assertEqual(status, 200)
        self.assertGreater(data["access_token_expire_in"], time.time())
        status, answer = self.update(s, data["access_token"])
        self.assertEqual((status, answer["code"]), (200, 0))
        self.assertEqual(s.quantities()[0], 1)


class AmazonMode(Case):
    PATCH = "/listings/2021-08-01/items/A1PGVESTEST/SKU%2D7?marketplaceIds=ATVPDKIKX0DER"
    BODY = json.dumps({"patches": [{"op": "replace",
                                    "path": "/attributes/fulfillment_availability",
                                    "value": [{"fulfillment_channel_code": "DEFAULT",
                                               "quantity": 41}]}],
                       "productType": "PRODUCT"}, separators=(",", ":")).encode()

    def grant(self, s, secret):
        form = urlencode({"grant_type": "refresh_token", "refresh_token": "Atzr|refresh",
                          "client_id": "client", "client_secret": secret})
        status, text = s.call("POST", "/auth/o2/token", form.encode(),
                              {"Content-Type": "application/x-www-form-urlencoded"})
        return status, json.loads(text)

    def test_patch_with_the_granted_token_is_kept(self):
        s = self.start("amazon", "client", "secret", "Atzr|refresh")
        status, token = self.grant(s, "secret")
        self.assertEqual((status, token["expires_in"]), (200, 3600))
        status, text = s.call("PATCH", self.PATCH, self.BODY,
                              {"x-amz-access-token": token["access_token"]})
        answer = json.loads(text)
        self.assertEqual((status, answer["status"], answer["sku"]), (200, "ACCEPTED", "SKU-7"))
        self.assertEqual(s.quantities(), (0, {"SKU-7": 41}))

    def test_wrong_client_or_token_is_refused_and_counted(self):
        s = self.start("amazon", "client", "secret", "Atzr|refresh")
        self.assertEqual(self.grant(s, "wrong")[0], 401)
        status, _ = s.call("PATCH", self.PATCH, self.BODY, {"x-amz-access-token": "none"})
        self.assertEqual(status, 403)
        self.assertEqual(self.grant(s, "secret")[0], 200)
        status, _ = s.call("PATCH", self.PATCH, self.BODY, {"x-amz-access-token": "stale"})
        self.assertEqual(status, 403)
        self.assertEqual(s.quantities(), (3, {}))


if __name__ == "__main__":
    unittest.main(verbosity=1)
