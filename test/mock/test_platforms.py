"""Self-test for the pg_ves platform mocks (test/mock/platforms.py).

Run with any of:
    python3 test/mock/test_platforms.py
    cd test/mock && python3 -m unittest test_platforms

Starts one mock process serving all four platforms and talks to each the way
a client (the pg_ves sync worker) would.  Takes a few seconds.
"""

import base64
import hashlib
import hmac
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
from urllib.parse import quote, urlencode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mockhttp import start_server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "platforms.py")

ITEM = "gid://shopify/InventoryItem/30322695"
ITEM2 = "gid://shopify/InventoryItem/30322696"
LOC = "gid://shopify/Location/124656943"
SET_QTY = """
mutation SetQty($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}"""
READ_QTY = """
query Read($item: ID!, $loc: ID!) {
  inventoryItem(id: $item) {
    id
    inventoryLevel(locationId: $loc) {
      quantities(names: ["available"]) { name quantity }
    }
  }
}"""


class Mocks:
    """One mock process for the whole module."""
    proc = None
    ports = {}
    tmp = None


def setUpModule():
    Mocks.tmp = tempfile.mkdtemp(prefix="pg_ves_platforms_test_")
    port_file = os.path.join(Mocks.tmp, "ports")
    Mocks.proc, ports = start_server(
        [sys.executable, MOCK, "--port", "0", "--port-file", port_file,
         "--log-dir", Mocks.tmp, "--quiet"], port_file, "platform mocks")
    Mocks.ports = {n: int(p) for n, p in
                   (line.split() for line in ports.splitlines() if line.strip())}


def tearDownModule():
    Mocks.proc.send_signal(signal.SIGTERM)
    try:
        rc = Mocks.proc.wait(timeout=5)
    finally:
        if Mocks.proc.poll() is None:
            Mocks.proc.kill()
        shutil.rmtree(Mocks.tmp, ignore_errors=True)
    if rc != 0:
        raise AssertionError("mocks exited with %r on SIGTERM" % rc)


class Base(unittest.TestCase):
    PLATFORM = None

    def setUp(self):
        self.port = Mocks.ports[self.PLATFORM]
        self.ctl("POST", "/_reset", {})

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, (json.loads(data) if data else None)

    def ctl(self, method, path, obj=None):
        r, data = self.call(method, path, obj)
        self.assertEqual(r.status, 200, data)
        return data

    def stats(self):
        return self.ctl("GET", "/_stats")

    def quantities(self):
        return self.ctl("GET", "/_quantities")["quantities"]

    def fault(self, **spec):
        self.ctl("POST", "/_faults", spec)

    def assert_reset(self, method, path, body=None, headers=None):
        with self.assertRaises((ConnectionError, http.client.HTTPException,
                                socket.error)):
            self.call(method, path, body, headers)

    def assert_no_auth_failures(self):
        s = self.stats()
        self.assertEqual(s["auth_failures"], 0, s["auth_failure_reasons"])


# ---------------------------------------------------------------------------

class ShopifyTest(Base):
    PLATFORM = "shopify"
    TOKEN = "shpat_pgves_test"
    PATH = "/admin/api/2026-04/graphql.json"

    def gql(self, query, variables, token=TOKEN, path=PATH):
        h = {"X-Shopify-Access-Token": token} if token else {}
        return self.call("POST", path, {"query": query,
                                        "variables": variables}, h)

    def set_qty(self, key, quantities, reason="correction"):
        return self.gql(SET_QTY, {"key": key, "input": {
            "name": "available", "reason": reason,
            "referenceDocumentUri": "pg-ves://stock/ev-1",
            "quantities": quantities}})

    def q(self, n, cfq, item=ITEM):
        return {"inventoryItemId": item, "locationId": LOC, "quantity": n,
                "changeFromQuantity": cfq}

    def test_set_then_read_back(self):
        r, data = self.set_qty("k1", [self.q(7, None)])
        self.assertEqual(r.status, 200)
        p = data["data"]["inventorySetQuantities"]
        self.assertEqual(p["userErrors"], [])
        self.assertEqual(p["inventoryAdjustmentGroup"]["changes"][0]
                         ["quantityAfterChange"], 7)
        self.assertIn("throttleStatus", data["extensions"]["cost"])
        self.assertEqual(self.quantities(), {ITEM + "@" + LOC: 7})
        r, data = self.gql(READ_QTY, {"item": ITEM, "loc": LOC})
        level = data["data"]["inventoryItem"]["inventoryLevel"]
        self.assertEqual(level["quantities"],
                         [{"name": "available", "quantity": 7}])
        self.assert_no_auth_failures()

    def test_inline_literals_and_aliases(self):
        q = ('mutation { inventorySetQuantities(input: {name: "available", '
             'reason: "correction", quantities: [{inventoryItemId: "%s", '
             'locationId: "%s", quantity: 3, changeFromQuantity: null}]}) '
             '@idempotent(key: "lit-1") { userErrors { code } } }'
             % (ITEM, LOC))
        r, data = self.gql(q, {})
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"],
                         [])
        read = ('{ a: inventoryItem(id: "%s") { inventoryLevel(locationId: '
                '"%s") { quantities(names: ["available"]) { quantity } } } '
                'b: inventoryItem(id: "%s") { inventoryLevel(locationId: "%s")'
                ' { quantities(names: ["available"]) { quantity } } } }'
                % (ITEM, LOC, ITEM2, LOC))
        r, data = self.gql(read, {})
        self.assertEqual(data["data"]["a"]["inventoryLevel"]["quantities"][0]
                         ["quantity"], 3)
        self.assertEqual(data["data"]["b"]["inventoryLevel"]["quantities"][0]
                         ["quantity"], 0)

    def test_wrong_or_missing_token(self):
        for token in ("shpat_wrong", None):
            r, data = self.gql(SET_QTY, {"key": "k", "input": {
                "name": "available", "reason": "correction",
                "quantities": [self.q(1, None)]}}, token=token)
            self.assertEqual(r.status, 401)
            self.assertIn("Invalid API key or access token", data["errors"])
        s = self.stats()
        self.assertEqual(s["auth_failures"], 2)
        self.assertEqual(s["auth_failure_reasons"],
                         {"wrong_token": 1, "missing_token": 1})
        self.assertEqual(self.quantities(), {})

    def test_idempotent_retry_applies_once(self):
        r1, d1 = self.set_qty("retry-key", [self.q(5, None)])
        # Someone changes Shopify in between; the retry must not re-apply.
        self.ctl("POST", "/_quantities", {"quantities": {ITEM + "@" + LOC: 9}})
        r2, d2 = self.set_qty("retry-key", [self.q(5, None)])
        self.assertEqual(d1["data"], d2["data"])
        self.assertEqual(self.quantities()[ITEM + "@" + LOC], 9)
        s = self.stats()
        self.assertEqual((s["applied"], s["replayed"]), (1, 1))
        # Same key, other input: refused.
        r3, d3 = self.set_qty("retry-key", [self.q(6, None)])
        errs = d3["data"]["inventorySetQuantities"]["userErrors"]
        self.assertEqual(errs[0]["code"], "IDEMPOTENCY_KEY_PARAMETER_MISMATCH")
        self.assertEqual(self.quantities()[ITEM + "@" + LOC], 9)

    def test_idempotent_directive_required(self):
        q = SET_QTY.replace("@idempotent(key: $key)", "")
        r, data = self.gql(q, {"key": "x", "input": {
            "name": "available", "reason": "correction",
            "quantities": [self.q(1, None)]}})
        self.assertEqual(r.status, 200)
        self.assertIn("@idempotent", data["errors"][0]["message"])
        self.assertEqual(self.quantities(), {})

    def test_change_from_quantity_compare_and_set(self):
        self.set_qty("a", [self.q(10, None)])
        r, data = self.set_qty("b", [self.q(8, 10)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"],
                         [])
        r, data = self.set_qty("c", [self.q(4, 10)])  # stale: it is 8
        p = data["data"]["inventorySetQuantities"]
        self.assertIsNone(p["inventoryAdjustmentGroup"])
        self.assertEqual(p["userErrors"][0]["code"],
                         "CHANGE_FROM_QUANTITY_STALE")
        self.assertEqual(p["userErrors"][0]["field"],
                         ["input", "quantities", "0", "changeFromQuantity"])
        self.assertEqual(self.quantities()[ITEM + "@" + LOC], 8)
        # The failed key is spent: a retry with it is refused.
        r, data = self.set_qty("c", [self.q(4, 10)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"]
                         [0]["code"], "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED")
        # All-or-nothing: one stale line rejects the whole mutation.
        r, data = self.set_qty("d", [self.q(1, 8), self.q(2, 99, ITEM2)])
        self.assertEqual(len(data["data"]["inventorySetQuantities"]
                             ["userErrors"]), 1)
        self.assertEqual(self.quantities()[ITEM + "@" + LOC], 8)
        self.assertEqual(self.stats()["stale"], 2)

    def test_change_from_quantity_must_be_given(self):
        q = {"inventoryItemId": ITEM, "locationId": LOC, "quantity": 1}
        r, data = self.set_qty("e", [q])
        self.assertIn("changeFromQuantity", data["errors"][0]["message"])
        self.assertEqual(data["errors"][0]["extensions"]["code"],
                         "INVALID_VARIABLE")

    def test_body_checks(self):
        cases = [({"name": "on_hand"}, "INVALID_NAME"),
                 ({"reason": "because"}, "INVALID_REASON"),
                 ({"referenceDocumentUri": "gid://shopify/Order/1"},
                  "INVALID_REFERENCE_DOCUMENT")]
        for i, (patch, code) in enumerate(cases):
            inp = {"name": "available", "reason": "correction",
                   "quantities": [self.q(1, None)]}
            inp.update(patch)
            r, data = self.gql(SET_QTY, {"key": "b%d" % i, "input": inp})
            self.assertEqual(data["data"]["inventorySetQuantities"]
                             ["userErrors"][0]["code"], code)
        r, data = self.set_qty("neg", [self.q(-1, None)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"]
                         [0]["code"], "INVALID_QUANTITY_NEGATIVE")
        r, data = self.set_qty("loc", [{"inventoryItemId": ITEM,
                                        "locationId": "124656943",
                                        "quantity": 1,
                                        "changeFromQuantity": None}])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"]
                         [0]["code"], "INVALID_LOCATION")
        r, data = self.call("POST", self.PATH, b"not json",
                            {"X-Shopify-Access-Token": self.TOKEN,
                             "Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        r, data = self.gql(SET_QTY, {}, path="/admin/api/2024-01/graphql.json")
        self.assertEqual(r.status, 404)
        self.assertEqual(self.quantities(), {})

    def test_throttle_injected_and_rate_limited(self):
        self.fault(kind="throttle", times=2)
        for _ in range(2):
            r, data = self.set_qty("t", [self.q(1, None)])
            self.assertEqual(r.status, 200)
            self.assertEqual(data["errors"][0]["extensions"]["code"],
                             "THROTTLED")
            ts = data["extensions"]["cost"]["throttleStatus"]
            self.assertEqual(set(ts), {"maximumAvailable",
                                       "currentlyAvailable", "restoreRate"})
        self.assertEqual(self.quantities(), {})
        # The throttled attempts did not spend the idempotency key.
        r, data = self.set_qty("t", [self.q(1, None)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"],
                         [])
        # A real bucket: 20 points, mutation costs 10, slow refill.
        self.ctl("POST", "/_config", {"rate_limit": {"rate": 0.5,
                                                     "burst": 20}})
        codes = []
        for i in range(3):
            r, data = self.set_qty("rl%d" % i, [self.q(i, None)])
            codes.append("errors" in data)
        self.assertEqual(codes, [False, False, True])
        self.assertLess(data["extensions"]["cost"]["throttleStatus"]
                        ["currentlyAvailable"], 10)
        self.assertEqual(self.stats()["throttled"], 3)

    def test_5xx_and_reset_faults(self):
        self.fault(kind="5xx", status=502)
        r, _ = self.set_qty("x", [self.q(1, None)])
        self.assertEqual(r.status, 502)
        self.fault(kind="reset")
        self.assert_reset("POST", self.PATH, {"query": SET_QTY},
                          {"X-Shopify-Access-Token": self.TOKEN})
        self.fault(kind="token_expiry")
        r, _ = self.set_qty("x", [self.q(1, None)])
        self.assertEqual(r.status, 401)
        r, data = self.set_qty("x", [self.q(1, None)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"],
                         [])
        s = self.stats()
        self.assertEqual((s["injected"], s["auth_failures"],
                          s["expired_token"]), (3, 0, 1))
        outcomes = [rec["outcome"] for rec in
                    self.ctl("GET", "/_log")["requests"]]
        self.assertEqual(outcomes, ["injected:5xx", "injected:reset",
                                    "injected:token_expiry", "applied"])

    def test_delay_fault_answers_normally_late(self):
        self.fault(kind="delay", delay_ms=150, times=2)
        for key, expect_late in (("d1", True), ("d2", True), ("d3", False)):
            started = time.monotonic()
            r, data = self.set_qty(key, [self.q(1, None)])
            took = time.monotonic() - started
            self.assertEqual(r.status, 200)
            self.assertEqual(
                data["data"]["inventorySetQuantities"]["userErrors"], [])
            if expect_late:
                self.assertGreaterEqual(took, 0.14)
        self.assertEqual(self.stats()["injected"], 2)
        outcomes = [rec["outcome"] for rec in
                    self.ctl("GET", "/_log")["requests"]]
        self.assertEqual(outcomes, ["applied", "applied", "applied"])
        with self.assertRaises(AssertionError):
            self.fault(kind="delay", delay_ms=60001)

    def test_webhook_behind_our_back(self):
        self.set_qty("w1", [self.q(10, None)])
        out = self.ctl("POST", "/_webhook", {"inventory_item_id": ITEM,
                                             "location_id": LOC,
                                             "available": 4,
                                             "webhook_id": "wh-1"})
        body = out["body"].encode()
        want = base64.b64encode(hmac.new(b"shopify-webhook-secret", body,
                                         hashlib.sha256).digest()).decode()
        self.assertEqual(out["headers"]["X-Shopify-Hmac-Sha256"], want)
        self.assertEqual(out["headers"]["X-Shopify-Topic"],
                         "inventory_levels/update")
        self.assertEqual(out["headers"]["X-Shopify-Webhook-Id"], "wh-1")
        self.assertEqual(json.loads(body)["available"], 4)
        self.assertEqual(json.loads(body)["inventory_item_id"], 30322695)
        # Our next push with the old changeFromQuantity is now stale.
        r, data = self.set_qty("w2", [self.q(9, 10)])
        self.assertEqual(data["data"]["inventorySetQuantities"]["userErrors"]
                         [0]["code"], "CHANGE_FROM_QUANTITY_STALE")

    def test_webhook_delivery_to_url(self):
        # Deliver to this mock itself (it answers 404 there): the delivery
        # happens outside the mock's lock, so it must not deadlock.
        url = "http://127.0.0.1:%d/hook" % self.port
        out = self.ctl("POST", "/_webhook", {"inventory_item_id": ITEM,
                                             "location_id": LOC,
                                             "available": 2, "url": url})
        self.assertEqual(out["delivered"]["status"], 404)
        rec = self.ctl("GET", "/_log")["requests"][-1]
        self.assertEqual(rec["path"], "/hook")
        self.assertEqual(rec["headers"]["x-shopify-hmac-sha256"],
                         out["headers"]["X-Shopify-Hmac-Sha256"])
        self.assertEqual(rec["body"], out["body"])


# ---------------------------------------------------------------------------

APP_KEY, APP_SECRET = "tts_app_key", "tts_app_secret"
CIPHER = "ROW_pgves_test"


def my_tiktok_sign(secret, path, params, body):
    # Written independently of the mock, from the signing rule in the spec.
    s = secret + path
    for k in sorted(params):
        if k not in ("sign", "access_token"):
            s += k + params[k]
    return hmac.new(secret.encode(), s.encode() + body + secret.encode(),
                    hashlib.sha256).hexdigest()


class TikTokTest(Base):
    PLATFORM = "tiktok"

    def tts(self, path, obj, token="tts_access_token_0", sign=None,
            params=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        p = {"app_key": APP_KEY, "timestamp": str(int(time.time())),
             "shop_cipher": CIPHER}
        p.update(params or {})
        p["sign"] = sign or my_tiktok_sign(APP_SECRET, path, p, body)
        h = {"Content-Type": "application/json"}
        if token:
            h["x-tts-access-token"] = token
        return self.call("POST", path + "?" + urlencode(p), body, h)

    def update(self, pid, sku, n, **kw):
        return self.tts("/product/202309/products/%s/inventory/update" % pid,
                        {"skus": [{"id": sku, "inventory": [
                            {"warehouse_id": "WH1", "quantity": n}]}]}, **kw)

    def test_update_and_search(self):
        r, data = self.update("P1", "S1", 12)
        self.assertEqual((r.status, data["code"], data["message"]),
                         (200, 0, "Success"))
        self.assertEqual(data["data"], {})
        self.assertTrue(data["request_id"])
        self.assertEqual(self.quantities(), {"P1/S1@WH1": 12})
        r, data = self.tts("/product/202309/inventory/search",
                           {"product_ids": ["P1"]})
        sku = data["data"]["inventory"][0]["skus"][0]
        self.assertEqual((sku["id"], sku["total_available_quantity"]),
                         ("S1", 12))
        self.assertEqual(sku["warehouse_inventory"][0]["warehouse_id"], "WH1")
        self.assert_no_auth_failures()

    def test_sign_covers_path_query_and_exact_body(self):
        path = "/product/202309/products/P1/inventory/update"
        body = b'{"skus":[{"id":"S1","inventory":[{"quantity":3}]}]}'
        good = my_tiktok_sign(APP_SECRET, path, {
            "app_key": APP_KEY, "timestamp": "1", "shop_cipher": CIPHER}, body)
        # The test's own signature agrees with the mock's.
        sys.path.insert(0, HERE)
        sys.dont_write_bytecode = True  # no __pycache__ in the tree
        import platforms
        self.assertEqual(good, platforms.tiktok_sign(APP_SECRET, path, [
            ("timestamp", "1"), ("shop_cipher", CIPHER), ("app_key", APP_KEY),
            ("access_token", "ignored")], body))
        r, data = self.tts(path, None, raw=body)
        self.assertEqual(data["code"], 0)
        # Same signature, one body byte changed: refused.
        p = {"app_key": APP_KEY, "timestamp": str(int(time.time())),
             "shop_cipher": CIPHER}
        sig = my_tiktok_sign(APP_SECRET, path, p, body)
        r, data = self.tts(path, None, raw=body.replace(b"3", b"4"), sign=sig,
                           params=p)
        self.assertEqual((r.status, data["code"]), (401, 106001))
        # Signed with the wrong secret.
        r, data = self.tts(path, None, raw=body, sign=my_tiktok_sign(
            "other", path, p, body), params=p)
        self.assertEqual(data["code"], 106001)
        self.assertEqual(self.quantities(), {"P1/S1@7000000000000000001": 3})
        self.assertEqual(self.stats()["auth_failure_reasons"], {"sign": 2})

    def test_other_auth_failures(self):
        r, data = self.update("P1", "S1", 1, token="nope")
        self.assertEqual((r.status, data["code"]), (401, 105001))
        r, data = self.update("P1", "S1", 1, token=None)
        self.assertEqual(data["code"], 105001)
        r, data = self.update("P1", "S1", 1, params={"app_key": "x"})
        self.assertEqual(data["code"], 106002)
        r, data = self.update("P1", "S1", 1, params={"timestamp": "1000"})
        self.assertEqual(data["code"], 106003)
        r, data = self.update("P1", "S1", 1, params={"shop_cipher": "x"})
        self.assertEqual(data["code"], 106004)
        self.assertEqual(self.stats()["auth_failures"], 5)
        self.assertEqual(self.quantities(), {})

    def test_token_expiry_and_refresh(self):
        self.ctl("POST", "/_expire_tokens", {})
        r, data = self.update("P1", "S1", 1)
        self.assertEqual((r.status, data["code"]), (401, 105002))
        q = {"app_key": APP_KEY, "app_secret": APP_SECRET,
             "refresh_token": "tts_refresh_token",
             "grant_type": "refresh_token"}
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        self.assertEqual(data["code"], 0)
        tok = data["data"]["access_token"]
        self.assertGreater(data["data"]["access_token_expire_in"],
                           time.time())
        self.assertEqual(data["data"]["refresh_token"], "tts_refresh_token")
        r, data = self.update("P1", "S1", 2, token=tok)
        self.assertEqual(data["code"], 0)
        bad = dict(q, refresh_token="wrong")
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode(bad))
        self.assertEqual(data["code"], 36004004)
        s = self.stats()
        self.assertEqual((s["expired_token"], s["token_grants"],
                          s["auth_failures"]), (1, 1, 1))

    def test_rotated_refresh_tokens(self):
        self.ctl("POST", "/_config", {"rotate_refresh_token": True})
        q = {"app_key": APP_KEY, "app_secret": APP_SECRET,
             "refresh_token": "tts_refresh_token",
             "grant_type": "refresh_token"}
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        self.assertEqual(data["code"], 0)
        rotated = data["data"]["refresh_token"]
        self.assertEqual(rotated, "tts_refresh_token_1")
        # The used refresh token no longer works; the rotated one does.
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        self.assertEqual(data["code"], 36004004)
        q["refresh_token"] = rotated
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode(q))
        self.assertEqual(data["code"], 0)
        self.assertEqual(data["data"]["refresh_token"], "tts_refresh_token_2")
        s = self.stats()
        self.assertEqual((s["token_grants"], s["auth_failures"]), (2, 1))

    def test_faults_and_rate_limit(self):
        self.fault(kind="throttle")
        r, data = self.update("P1", "S1", 1)
        self.assertEqual((r.status, data["code"]), (429, 36009004))
        self.fault(kind="5xx")
        r, data = self.update("P1", "S1", 1)
        self.assertEqual((r.status, data["code"]), (503, 36009005))
        self.fault(kind="token_expiry")
        r, data = self.update("P1", "S1", 1)
        self.assertEqual(data["code"], 105002)
        self.fault(kind="reset", times=1)
        self.assert_reset("POST", "/product/202309/products/P/inventory/"
                          "update", b"{}")
        # Faults without a path leave the token endpoint alone.
        self.fault(kind="5xx", times=None)
        r, data = self.call("GET", "/api/v2/token/refresh?" + urlencode({
            "app_key": APP_KEY, "app_secret": APP_SECRET,
            "refresh_token": "tts_refresh_token",
            "grant_type": "refresh_token"}))
        self.assertEqual(data["code"], 0)
        self.ctl("POST", "/_faults", {"clear": True})
        self.ctl("POST", "/_config", {"rate_limit": {"rate": 0.1,
                                                     "burst": 2}})
        got = [self.update("P1", "S1", i)[1]["code"] for i in range(3)]
        self.assertEqual(got, [0, 0, 36009004])
        self.assertEqual(self.quantities(), {"P1/S1@WH1": 1})

    def test_body_shapes_and_unknown_product(self):
        for bad in ({"skus": []}, {"skus": [{"id": "S1"}]},
                    {"skus": [{"id": "S1", "inventory": [{"quantity": "3"}]}]},
                    {"sku": []}):
            r, data = self.tts("/product/202309/products/P1/inventory/update",
                               bad)
            self.assertEqual(data["code"], 36009003, bad)
        r, data = self.update("P1", "S1", 100000)
        self.assertEqual(data["code"], 12052050)
        self.ctl("POST", "/_config", {"strict": True})
        self.ctl("POST", "/_quantities", {"quantities": {"P1/S1@WH1": 5}})
        r, data = self.update("P2", "S1", 1)
        self.assertEqual((r.status, data["code"]), (404, 12052048))
        r, data = self.update("P1", "S9", 1)
        self.assertEqual(data["code"], 12052049)
        self.assertEqual(self.quantities(), {"P1/S1@WH1": 5})

    def test_webhook_signer(self):
        out = self.ctl("POST", "/_sign_webhook", {"body": {
            "type": 1, "tts_notification_id": "n-1", "data": {}}})
        want = hmac.new(APP_SECRET.encode(), APP_KEY.encode() +
                        out["body"].encode(), hashlib.sha256).hexdigest()
        self.assertEqual(out["headers"]["Authorization"], want)


# ---------------------------------------------------------------------------

SELLER, MP = "A1PGVESTEST", "ATVPDKIKX0DER"
LWA = {"grant_type": "refresh_token",
       "refresh_token": "Atzr|pgves-refresh-token",
       "client_id": "amzn1.application-oa2-client.pgvestest",
       "client_secret": "amzn-client-secret"}


def fa_patch(n, product_type="PRODUCT"):
    return {"productType": product_type, "patches": [{
        "op": "replace", "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": n}]}]}


class AmazonTest(Base):
    PLATFORM = "amazon"

    def token(self, form=LWA):
        r, data = self.call("POST", "/auth/o2/token", urlencode(form).encode(),
                            {"Content-Type":
                             "application/x-www-form-urlencoded"})
        return r, data

    def item_path(self, sku, seller=SELLER, extra=""):
        return "/listings/2021-08-01/items/%s/%s?marketplaceIds=%s%s" % (
            seller, quote(sku, safe=""), MP, extra)

    def patch(self, sku, body, token, seller=SELLER):
        h = {"x-amz-access-token": token} if token else {}
        return self.call("PATCH", self.item_path(sku, seller), body, h)

    def test_lwa_patch_and_read(self):
        r, tok = self.token()
        self.assertEqual(r.status, 200)
        self.assertEqual(tok["token_type"], "bearer")
        self.assertEqual(tok["expires_in"], 3600)
        r, data = self.patch("SKU 1/a", fa_patch(6), tok["access_token"])
        self.assertEqual(r.status, 200)
        self.assertEqual((data["sku"], data["status"], data["issues"]),
                         ("SKU 1/a", "ACCEPTED", []))
        self.assertTrue(data["submissionId"])
        self.assertEqual(r.getheader("x-amzn-RateLimit-Limit"), "5.0")
        r, data = self.call("GET", self.item_path(
            "SKU 1/a", extra="&includedData=fulfillmentAvailability"),
            headers={"x-amz-access-token": tok["access_token"]})
        self.assertEqual(data["fulfillmentAvailability"],
                         [{"fulfillmentChannelCode": "DEFAULT",
                           "quantity": 6}])
        r, data = self.call("GET", self.item_path("nope"),
                            headers={"x-amz-access-token":
                                     tok["access_token"]})
        self.assertEqual(r.status, 404)
        self.assert_no_auth_failures()

    def test_lwa_refusals(self):
        r, data = self.token(dict(LWA, client_secret="x"))
        self.assertEqual((r.status, data["error"]), (401, "invalid_client"))
        r, data = self.token(dict(LWA, refresh_token="x"))
        self.assertEqual((r.status, data["error"]), (400, "invalid_grant"))
        r, data = self.token(dict(LWA, grant_type="client_credentials"))
        self.assertEqual(data["error"], "unsupported_grant_type")
        self.assertEqual(self.stats()["auth_failures"], 2)

    def test_token_expiry(self):
        self.ctl("POST", "/_config", {"expires_in": 1})
        tok = self.token()[1]
        self.assertEqual(tok["expires_in"], 1)
        time.sleep(1.1)
        r, data = self.patch("S1", fa_patch(1), tok["access_token"])
        self.assertEqual(r.status, 403)
        self.assertIn("expired", data["errors"][0]["message"])
        tok = self.token()[1]
        self.ctl("POST", "/_expire_tokens", {})
        r, data = self.patch("S1", fa_patch(1), tok["access_token"])
        self.assertEqual(r.status, 403)
        tok = self.token()[1]
        r, data = self.patch("S1", fa_patch(1), tok["access_token"])
        self.assertEqual(data["status"], "ACCEPTED")
        s = self.stats()
        self.assertEqual((s["expired_token"], s["auth_failures"],
                          s["token_grants"]), (2, 0, 3))

    def test_bad_tokens_and_seller(self):
        tok = self.token()[1]["access_token"]
        for t in (None, "Atza|forged"):
            r, data = self.patch("S1", fa_patch(1), t)
            self.assertEqual((r.status, data["errors"][0]["code"]),
                             (403, "Unauthorized"))
        r, data = self.patch("S1", fa_patch(1), tok, seller="AOTHER")
        self.assertEqual(r.status, 403)
        self.assertEqual(self.stats()["auth_failures"], 3)
        self.assertEqual(self.quantities(), {})

    def test_invalid_shapes(self):
        tok = self.token()[1]["access_token"]
        bad = fa_patch(1)
        bad["patches"][0]["value"][0]["fulfillment_channel_code"] = "AMAZON_NA"
        r, data = self.patch("S1", bad, tok)
        self.assertEqual((r.status, data["status"]), (200, "INVALID"))
        self.assertEqual(data["issues"][0]["severity"], "ERROR")
        bad = fa_patch(-2)
        r, data = self.patch("S1", bad, tok)
        self.assertEqual(data["status"], "INVALID")
        bad = fa_patch(1)
        bad["patches"][0]["path"] = "/attributes/price"
        r, data = self.patch("S1", bad, tok)
        self.assertEqual(data["status"], "INVALID")
        r, data = self.patch("S1", {"patches": []}, tok)
        self.assertEqual((r.status, data["errors"][0]["code"]),
                         (400, "InvalidInput"))
        r, data = self.call("PATCH", "/listings/2021-08-01/items/%s/S1"
                            % SELLER, fa_patch(1),
                            {"x-amz-access-token": tok})
        self.assertEqual(r.status, 400)  # no marketplaceIds
        self.assertEqual(self.quantities(), {})

    def test_throttle(self):
        tok = self.token()[1]["access_token"]
        self.fault(kind="throttle", times=2)
        for _ in range(2):
            r, data = self.patch("S1", fa_patch(1), tok)
            self.assertEqual(r.status, 429)
            self.assertEqual(r.getheader("x-amzn-RateLimit-Limit"), "5.0")
            self.assertEqual(data["errors"][0]["code"], "QuotaExceeded")
        r, data = self.patch("S1", fa_patch(1), tok)
        self.assertEqual(data["status"], "ACCEPTED")
        self.ctl("POST", "/_config", {"rate_limit": {"rate": 0.1,
                                                     "burst": 5}})
        got = [self.patch("S1", fa_patch(i), tok)[0].status
               for i in range(6)]
        self.assertEqual(got, [200] * 5 + [429])
        # A fault on the token endpoint needs an explicit path.
        self.fault(kind="5xx", path="/auth/o2/token")
        self.assertEqual(self.token()[0].status, 503)
        self.assertEqual(self.token()[0].status, 200)


# ---------------------------------------------------------------------------

CATALOG, META_TOKEN = "880000000000001", "meta-access-token"


class MetaTest(Base):
    PLATFORM = "meta"

    def batch(self, reqs, token=META_TOKEN, as_json=False, item_type=None):
        fields = {"access_token": token,
                  "item_type": item_type or "PRODUCT_ITEM",
                  "requests": reqs if as_json else json.dumps(reqs)}
        if as_json:
            return self.call("POST", "/v21.0/%s/items_batch" % CATALOG,
                             fields)
        return self.call("POST", "/v21.0/%s/items_batch" % CATALOG,
                         urlencode(fields).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"})

    def status(self, handle, token=META_TOKEN):
        return self.call("GET", "/v21.0/%s/check_batch_request_status?%s" % (
            CATALOG, urlencode({"handle": handle, "access_token": token})))

    @staticmethod
    def upd(rid, n):
        return {"method": "UPDATE",
                "data": {"id": rid, "quantity_to_sell_on_facebook": n}}

    def test_batch_handles_status_and_read(self):
        r, data = self.batch([self.upd("r1", 4), self.upd("r2", 0)])
        self.assertEqual(r.status, 200)
        handle = data["handles"][0]
        r, data = self.status(handle)
        st = data["data"][0]
        self.assertEqual((st["status"], st["errors_total_count"]),
                         ("finished", 0))
        self.assertEqual(self.quantities(), {"r1": 4, "r2": 0})
        r, data = self.batch([self.upd("r1", 5)], as_json=True)
        self.assertIn("handles", data)
        query = urlencode({
            "access_token": META_TOKEN,
            "fields": "retailer_id,quantity_to_sell_on_facebook",
            "filter": json.dumps({"retailer_id": {"eq": "r1"}})})
        r, data = self.call("GET", "/v21.0/%s/products?%s"
                            % (CATALOG, query))
        self.assertEqual([(d["retailer_id"], d["quantity_to_sell_on_facebook"])
                          for d in data["data"]], [("r1", 5)])
        self.assert_no_auth_failures()

    def test_per_item_errors(self):
        self.ctl("POST", "/_config", {"reject_ids": ["bad"]})
        r, data = self.batch([self.upd("ok", 3), self.upd("bad", 2),
                              {"method": "UPDATE", "data": {"id": "neg",
                               "quantity_to_sell_on_facebook": -1}}])
        st = self.status(data["handles"][0])[1]["data"][0]
        self.assertEqual(st["errors_total_count"], 2)
        self.assertEqual([e["id"] for e in st["errors"]], ["bad", "neg"])
        self.assertEqual([e["line"] for e in st["errors"]], [1, 2])
        self.assertEqual(self.quantities(), {"ok": 3})

    def test_pending_batches_apply_when_finished(self):
        self.ctl("POST", "/_config", {"pending_checks": 2})
        handle = self.batch([self.upd("p", 9)])[1]["handles"][0]
        self.assertEqual(self.quantities(), {})
        for want in ("started", "started", "finished"):
            self.assertEqual(self.status(handle)[1]["data"][0]["status"], want)
        self.assertEqual(self.quantities(), {"p": 9})

    def test_batch_limit_and_shapes(self):
        self.ctl("POST", "/_config", {"batch_limit": 3})
        r, data = self.batch([self.upd("x%d" % i, 1) for i in range(4)],
                             as_json=True)
        self.assertEqual((r.status, data["error"]["code"]), (400, 100))
        r, data = self.batch([self.upd("x", 1)], item_type="HOTEL")
        self.assertEqual(r.status, 400)
        r, data = self.status("nope")
        self.assertEqual(r.status, 400)
        self.assertEqual(self.quantities(), {})

    def test_auth_expiry_and_throttle(self):
        r, data = self.batch([self.upd("a", 1)], token="wrong")
        self.assertEqual((r.status, data["error"]["code"],
                          data["error"]["type"]), (400, 190, "OAuthException"))
        new = self.ctl("POST", "/_expire_tokens", {"new_token": "t2"})
        self.assertEqual(new["access_token"], "t2")
        r, data = self.batch([self.upd("a", 1)])
        self.assertEqual((data["error"]["code"],
                          data["error"]["error_subcode"]), (190, 463))
        r, data = self.batch([self.upd("a", 1)], token="t2")
        self.assertIn("handles", data)
        for code in (4, 17, 32, 613):
            self.ctl("POST", "/_config", {"throttle_code": code})
            self.fault(kind="throttle")
            r, data = self.batch([self.upd("a", 2)], token="t2")
            self.assertEqual(data["error"]["code"], code)
        self.assertEqual(self.quantities(), {"a": 1})
        s = self.stats()
        self.assertEqual((s["auth_failures"], s["expired_token"],
                          s["throttled"]), (1, 1, 4))

    def test_webhook_signer(self):
        out = self.ctl("POST", "/_sign_webhook", {"body": '{"object":"x"}'})
        self.assertEqual(out["headers"]["X-Hub-Signature-256"],
                         "sha256=" + hmac.new(b"meta-app-secret",
                                              b'{"object":"x"}',
                                              hashlib.sha256).hexdigest())


class ControlTest(Base):
    PLATFORM = "amazon"

    def test_log_and_bad_control(self):
        self.call("GET", "/nope")
        log = self.ctl("GET", "/_log?after=0")
        self.assertEqual(log["count"], 1)
        rec = log["requests"][0]
        self.assertEqual((rec["seq"], rec["path"], rec["status"]),
                         (1, "/nope", 404))
        self.assertIn("errors", json.loads(rec["answer"]))
        for spec in ({"kind": "explode"}, {"kind": "5xx", "status": 200},
                     {"kind": "reset", "times": 0}):
            r, _ = self.call("POST", "/_faults", spec)
            self.assertEqual(r.status, 400)
        r, _ = self.call("POST", "/_config", {"no_such": 1})
        self.assertEqual(r.status, 400)
        r, _ = self.call("POST", "/_quantities", {"quantities": {"a": "1"}})
        self.assertEqual(r.status, 400)
        with open(os.path.join(Mocks.tmp, "amazon.jsonl")) as f:
            self.assertTrue(any('"/nope"' in line for line in f))

    def test_every_nth(self):
        self.fault(kind="5xx", times=None, every=3)
        got = [self.call("GET", "/listings/2021-08-01/items/%s/S?"
                         "marketplaceIds=%s" % (SELLER, MP))[0].status
               for _ in range(6)]
        self.assertEqual(got, [403, 403, 503, 403, 403, 503])


if __name__ == "__main__":
    unittest.main()
