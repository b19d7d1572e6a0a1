#!/usr/bin/env python3
"""Mock commerce platforms for pg_ves tests: Shopify, TikTok Shop, Amazon
SP-API and the Meta catalog.

Each mock keeps its own inventory quantities, checks what the real platform
checks (credentials, request signatures, body shapes, compare-and-set,
idempotency keys) and answers the way the platform documents it, including
throttling and error bodies.  A control API under /_ lets a test read and
change the mock's quantities, inject failures and read the request log.

Standard library only.  See test/mock/README.md for the routes, the control
API and the error tables.  One process serves any subset of the four
platforms, one port each:

    python3 test/mock/platforms.py --port-file DIR/platforms.ports --quiet

writes one "name port" line per platform once all are listening.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mockhttp import (ControlError, MockServer,  # noqa: E402
                      RequestLog, parse_fault_spec, write_atomic)

FAULT_KINDS = ("throttle", "5xx", "token_expiry", "reset", "delay", "late")
SERVER_NAME = "pg_ves-platform-mock"


class Reply:
    """An answer: status, JSON-able object (or raw bytes), extra headers."""

    __slots__ = ("status", "obj", "headers", "reset", "outcome", "_data")

    def __init__(self, status=200, obj=None, headers=(), outcome="ok",
                 reset=False):
        self.status = status
        self.obj = obj
        self.headers = list(headers)
        self.outcome = outcome
        self.reset = reset
        self._data = None

    def body(self):
        # Encoded once: the request log and the answer both need it, and a
        # reply is not changed once made.
        if self._data is None:
            self._data = self.obj if isinstance(self.obj, bytes) else \
                json.dumps(self.obj, separators=(",", ":")).encode()
        return self._data


class Fault:
    __slots__ = ("kind", "times", "every", "path", "status", "matched",
                 "delay_ms")

    def __init__(self, spec):
        self.kind, self.times, self.path, self.status = parse_fault_spec(
            spec, FAULT_KINDS)
        self.delay_ms = int(spec.get("delay_ms", 1000))
        if not 0 <= self.delay_ms <= 60000:
            raise ControlError("delay_ms must be within 0..60000")
        self.every = spec.get("every")
        if self.every is not None:
            self.every = int(self.every)
            if self.every < 1:
                raise ControlError("every must be >= 1")
        self.matched = 0

    def describe(self):
        d = {"kind": self.kind, "times": self.times, "every": self.every,
             "path": self.path, "status": self.status}
        if self.kind in ("delay", "late"):
            d["delay_ms"] = self.delay_ms
        return d


class Bucket:
    """Token bucket: `burst` units, refilled at `rate` units per second."""

    def __init__(self, rate, burst):
        self.rate = float(rate)
        self.burst = float(burst)
        self.level = self.burst
        self.stamp = time.monotonic()

    def refill(self):
        now = time.monotonic()
        self.level = min(self.burst,
                         self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.level

    def take(self, cost=1.0):
        if self.refill() >= cost:
            self.level -= cost
            return True
        return False


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def hmac_sha256(key, data):
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, data, hashlib.sha256)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------
# Common base: request log, counters, faults, quantities, control API
# ---------------------------------------------------------------------------

class Platform(RequestLog):
    name = "?"
    DEFAULTS = {}

    def __init__(self, config=None):
        self.lock = threading.RLock()
        self.late = threading.local()  # this request's "late" fault: ms to wait
        self.base_config = dict(self.DEFAULTS)
        self.base_config.update(config or {})
        self.init_request_log()
        self.reset()

    # -- state -------------------------------------------------------------
    def reset(self):
        with self.lock:
            self.config = json.loads(json.dumps(self.base_config))
            self.clear_records()
            self.faults = []
            self.quantities = {}
            self.stats = {"requests": 0, "auth_failures": 0,
                          "expired_token": 0, "throttled": 0,
                          "injected": 0, "applied": 0, "rejected": 0,
                          "token_grants": 0}
            self.auth_failure_reasons = {}
            self.bucket = None
            rl = self.config.get("rate_limit")
            if rl:
                self.bucket = Bucket(rl["rate"], rl["burst"])
            self.reset_platform()

    def reset_platform(self):
        pass

    def auth_failed(self, reason):
        # Caller holds the lock.  Credentials that were never valid: a
        # missing or unknown token, a wrong signature, a wrong client secret.
        self.stats["auth_failures"] += 1
        self.auth_failure_reasons[reason] = \
            self.auth_failure_reasons.get(reason, 0) + 1
        return "auth_failed:" + reason

    def expired(self):
        # A token that was valid once but has expired (or an injected
        # expiry): the client is expected to refresh, not a failure.
        self.stats["expired_token"] += 1
        return "expired_token"

    def take_fault(self, path, token_endpoint=False):
        """The injected fault for this request, or None.  Caller holds lock.

        A fault without `path` applies to the platform's API requests, not
        to its token endpoints; give `path` to target those."""
        for f in self.faults:
            if f.path is None:
                if token_endpoint:
                    continue
            elif not path.startswith(f.path):
                continue
            if f.every is not None:
                f.matched += 1
                if f.matched % f.every:
                    continue
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
            self.stats["injected"] += 1
            if f.kind == "delay":
                # Answered normally, late. The lock is held meanwhile, so
                # the mock answers nothing else during the wait either.
                time.sleep(f.delay_ms / 1000.0)
                continue
            if f.kind == "late":
                # Answered as things stand now, but sent only after the
                # wait, during which other requests are served (a read
                # whose answer is older than what happens meanwhile).
                self.late.ms = f.delay_ms
                continue
            return f
        return None

    def rate_limited(self, cost=1.0):
        """True if the optional rate limit refuses this request."""
        return self.bucket is not None and not self.bucket.take(cost)

    def fault_reply(self, fault):
        if fault.kind == "reset":
            return Reply(reset=True, outcome="injected:reset")
        if fault.kind == "throttle":
            self.stats["throttled"] += 1
            r = self.throttle_reply()
        elif fault.kind == "token_expiry":
            self.expired()
            r = self.expired_reply()
        else:
            r = self.server_error_reply(fault.status)
        r.outcome = "injected:" + fault.kind
        return r

    # Each platform overrides these four.
    def throttle_reply(self):
        return Reply(429, {"error": "throttled"})

    def expired_reply(self):
        return Reply(401, {"error": "expired"})

    def server_error_reply(self, status):
        return Reply(status, {"error": "server error"})

    def route(self, method, parts, headers, body):
        return Reply(404, {"error": "not found"})

    # -- quantities: key -> int, keys per platform (see README) ------------
    def qty(self, key, default=None):
        return self.quantities.get(key, default)

    def set_qty(self, key, n):
        self.quantities[key] = n

    # -- dispatch ----------------------------------------------------------
    def handle(self, method, target, headers, body, peer):
        parts = urlsplit(target)
        if parts.path.startswith("/_"):
            try:
                with self.lock:
                    status, obj = self.control(method, parts, body)
            except (ControlError, ValueError, TypeError, KeyError) as e:
                status, obj = 400, {"error": str(e)}
            if isinstance(obj, dict) and "_deliver" in obj:
                # Outside the lock: the URL may lead back to this mock.
                obj = deliver(*obj.pop("_deliver"))
            return Reply(status, obj, outcome="control")
        self.late.ms = 0
        with self.lock:
            self.stats["requests"] += 1
            try:
                reply = self.route(method, parts, headers, body)
            except Exception as e:  # a mock bug must show, not hang
                sys.stderr.write("%s mock: internal error: %r\n"
                                 % (self.name, e))
                reply = Reply(500, {"error": "mock internal error: %r" % e},
                              outcome="mock_bug")
            rec = self.add_record(method, target, headers, body, peer, reply)
        self.write_record(rec)
        if self.late.ms:
            time.sleep(self.late.ms / 1000.0)
        return reply

    def control(self, method, parts, body):
        route = parts.path.rstrip("/")
        query = parse_qs(parts.query)
        spec = json.loads(body.decode() or "{}") if method == "POST" else {}
        if route in ("/_log", "/_requests") and method == "GET":
            after = int(query.get("after", ["0"])[0])
            recs = [r for r in self.records if r["seq"] > after]
            return 200, {"requests": recs, "count": self.seq}
        if route in ("/_log/count", "/_requests/count") and method == "GET":
            return 200, {"count": self.seq}
        if route == "/_stats" and method == "GET":
            out = dict(self.stats)
            out["auth_failure_reasons"] = dict(self.auth_failure_reasons)
            out["faults_pending"] = [f.describe() for f in self.faults]
            return 200, out
        if route == "/_reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if route == "/_quantities":
            if method == "POST":
                q = spec.get("quantities", {})
                if not isinstance(q, dict):
                    raise ControlError("quantities must be an object")
                for k, v in q.items():
                    if not is_int(v):
                        raise ControlError("quantity for %r must be an "
                                           "integer" % k)
                    self.check_key(k)
                for k, v in q.items():
                    self.set_qty(k, v)
                for k in spec.get("delete", []):
                    self.quantities.pop(k, None)
            return 200, {"quantities": dict(sorted(self.quantities.items()))}
        if route == "/_faults":
            if method == "POST":
                if spec.get("clear"):
                    self.faults = []
                else:
                    self.faults.append(Fault(spec))
            return 200, {"faults": [f.describe() for f in self.faults]}
        if route == "/_config":
            if method == "POST":
                for k in spec:
                    if k not in self.config:
                        raise ControlError("unknown config key %r" % k)
                self.config.update(spec)
                if "rate_limit" in spec:
                    rl = spec["rate_limit"]
                    self.bucket = Bucket(rl["rate"], rl["burst"]) \
                        if rl else None
            return 200, {"config": self.config}
        return self.platform_control(method, route, query, spec)

    def platform_control(self, method, route, query, spec):
        return 404, {"error": "no such control endpoint"}

    def token_control(self, method, route):
        """The controls of platforms that issue access tokens (self.tokens:
        token -> expiry): POST /_expire_tokens expires every access token
        issued so far (the refresh token stays valid); GET /_tokens lists
        them. None for any other route."""
        if route == "/_expire_tokens" and method == "POST":
            for t in self.tokens:
                self.tokens[t] = 0
            return 200, {"ok": True, "expired": len(self.tokens)}
        if route == "/_tokens" and method == "GET":
            now = time.time()
            return 200, {"tokens": {t: {"expires": e, "valid": e > now}
                                    for t, e in self.tokens.items()}}
        return None

    def check_key(self, key):
        pass


# ---------------------------------------------------------------------------
# Shopify Admin GraphQL
#
# Follows Shopify's Admin GraphQL API reference: the inventorySetQuantities
# mutation (InventorySetQuantitiesInput, InventoryQuantityInput with
# changeFromQuantity, InventorySetQuantitiesUserErrorCode), the @idempotent
# directive, the query cost / throttleStatus extensions of its rate-limit
# guide, the InventoryItem.inventoryLevel.quantities read, and the
# inventory_levels/update webhook with its HMAC header (webhook docs).
# ---------------------------------------------------------------------------

class GraphQLError(ValueError):
    pass


TOKEN_RE = re.compile(r"""
    (?P<ws>[\s,\ufeff]+|\#[^\n]*) |
    (?P<block>\"\"\"(?:\\\"\"\"|[^\"]|\"(?!\"\"))*\"\"\") |
    (?P<str>"(?:\\.|[^"\\\n])*") |
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) |
    (?P<name>[_A-Za-z][_0-9A-Za-z]*) |
    (?P<spread>\.\.\.) |
    (?P<punct>[!$&()\[\]{}:=@|])
""", re.VERBOSE)


def gql_tokens(text):
    out = []
    pos = 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise GraphQLError("Syntax error: unexpected character %r"
                               % text[pos])
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        val = m.group()
        if kind == "str":
            val = json.loads(val)
        elif kind == "block":
            val = val[3:-3]
            kind = "str"
        out.append((kind, val))
    return out


class GQLParser:
    """Just enough GraphQL to read field arguments and directives."""

    def __init__(self, tokens, variables):
        self.t = tokens
        self.vars = variables

    def value(self, i):
        kind, v = self.t[i]
        if kind == "punct" and v == "$":
            name = self.t[i + 1][1]
            if name not in self.vars:
                raise GraphQLError("Variable $%s is used but not provided"
                                   % name)
            return self.vars[name], i + 2
        if kind == "str":
            return v, i + 1
        if kind == "num":
            return (float(v) if any(c in v for c in ".eE") else int(v)), i + 1
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(v, v), \
                i + 1
        if v == "[":
            out = []
            i += 1
            while self.t[i][1] != "]":
                item, i = self.value(i)
                out.append(item)
            return out, i + 1
        if v == "{":
            out = {}
            i += 1
            while self.t[i][1] != "}":
                key = self.t[i][1]
                if self.t[i + 1][1] != ":":
                    raise GraphQLError("Syntax error: expected ':'")
                out[key], i = self.value(i + 2)
            return out, i + 1
        raise GraphQLError("Syntax error: unexpected %r" % v)

    def args(self, i):
        """Parse "(name: value ...)" at i; returns (dict, next i)."""
        out = {}
        if i >= len(self.t) or self.t[i][1] != "(":
            return out, i
        i += 1
        while self.t[i][1] != ")":
            key = self.t[i][1]
            if self.t[i + 1][1] != ":":
                raise GraphQLError("Syntax error: expected ':' after %s" % key)
            out[key], i = self.value(i + 2)
        return out, i + 1

    def directives(self, i):
        out = {}
        while i < len(self.t) and self.t[i][1] == "@":
            name = self.t[i + 1][1]
            out[name], i = self.args(i + 2)
        return out, i

    def fields(self, name):
        """Every occurrence of field `name`: (alias, args, directives, i)."""
        res = []
        for i, (kind, v) in enumerate(self.t):
            if kind != "name" or v != name:
                continue
            if i > 0 and self.t[i - 1][1] in ("$", "@"):
                continue
            alias = name
            if i >= 2 and self.t[i - 1][1] == ":" and \
                    self.t[i - 2][0] == "name":
                alias = self.t[i - 2][1]
            a, j = self.args(i + 1)
            d, j = self.directives(j)
            res.append((alias, a, d, j))
        return res


SHOPIFY_REASONS = {
    "correction", "cycle_count_available", "damaged", "movement_canceled",
    "movement_created", "movement_received", "movement_updated", "other",
    "promotion", "quality_control", "received", "reservation_created",
    "reservation_deleted", "reservation_updated", "restock",
    "safety_stock", "shrinkage"}
SHOPIFY_ITEM_RE = re.compile(r"^gid://shopify/InventoryItem/(\d+)$")
SHOPIFY_LOCATION_RE = re.compile(r"^gid://shopify/Location/(\d+)$")
SHOPIFY_MUTATION_COST = 10
SHOPIFY_QUERY_COST = 2


class Shopify(Platform):
    name = "shopify"
    DEFAULTS = {
        "access_token": "shpat_pgves_test",
        "webhook_secret": "shopify-webhook-secret",
        "shop_domain": "pgves-test.myshopify.com",
        "min_api_version": "2026-04",
        # Unknown inventory items / locations: strict=false creates them at
        # quantity 0 on first use; strict=true answers INVALID_INVENTORY_ITEM
        # for items that /_quantities never set.
        "strict": False,
        # null = no limit; else {"rate": points/s, "burst": points}, which
        # throttleStatus reports as restoreRate / maximumAvailable.
        "rate_limit": None,
    }

    def reset_platform(self):
        self.idempotency = {}   # key -> {"fingerprint", "obj", "failed"}
        self.stats.update({"stale": 0, "replayed": 0})
        self.group_seq = 0
        self.webhooks = 0

    def check_key(self, key):
        item, sep, loc = key.partition("@")
        if not (SHOPIFY_ITEM_RE.match(item) and
                SHOPIFY_LOCATION_RE.match(loc)):
            raise ControlError("Shopify key is 'gid://shopify/InventoryItem/N"
                               "@gid://shopify/Location/N'")

    def cost_extension(self, requested):
        if self.bucket is not None:
            level, top, rate = self.bucket.refill(), self.bucket.burst, \
                self.bucket.rate
        else:
            level, top, rate = 2000.0, 2000.0, 100.0
        return {"cost": {"requestedQueryCost": requested,
                         "actualQueryCost": requested,
                         "throttleStatus": {"maximumAvailable": top,
                                            "currentlyAvailable": level,
                                            "restoreRate": rate}}}

    def throttle_reply(self, requested=SHOPIFY_MUTATION_COST):
        ext = self.cost_extension(requested)
        ext["cost"]["actualQueryCost"] = None
        if self.bucket is None:
            # Injected throttle: report an empty bucket.
            ext["cost"]["throttleStatus"]["currentlyAvailable"] = 0.0
        return Reply(200, {"errors": [{
            "message": "Throttled",
            "extensions": {"code": "THROTTLED",
                           "documentation": "https://shopify.dev/api/usage/"
                                            "rate-limits"}}],
            "extensions": ext}, outcome="throttled")

    def expired_reply(self):
        return Reply(401, {"errors": "[API] Invalid API key or access token "
                                     "(unrecognized login or wrong password)"})

    def server_error_reply(self, status):
        return Reply(status, {"errors": "Internal Server Error"})

    def top_error(self, message, code):
        return Reply(200, {"errors": [{"message": message,
                                       "extensions": {"code": code}}]},
                     outcome="graphql_error:" + code)

    def route(self, method, parts, headers, body):
        m = re.match(r"^/admin/api/(\d{4}-\d{2}|unstable)/graphql\.json$",
                     parts.path)
        if not m:
            return Reply(404, {"errors": "Not Found"}, outcome="not_found")
        if m.group(1) != "unstable" and \
                m.group(1) < self.config["min_api_version"]:
            # The mock refuses versions older than the one that has
            # changeFromQuantity, so a stale default shows up at once.
            return Reply(404, {"errors": "Not Found"},
                         outcome="old_api_version")
        if method != "POST":
            return Reply(405, {"errors": "Method Not Allowed"},
                         outcome="bad_method")
        fault = self.take_fault(parts.path)
        if fault:
            return self.fault_reply(fault)
        token = headers.get("x-shopify-access-token")
        if token != self.config["access_token"]:
            r = self.expired_reply()
            r.outcome = self.auth_failed("missing_token" if not token
                                         else "wrong_token")
            return r
        if "json" not in headers.get("content-type", ""):
            return Reply(415, {"errors": "Content-Type must be "
                                         "application/json"},
                         outcome="bad_content_type")
        try:
            req = json.loads(body)
            query = req["query"]
            variables = req.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Reply(400, {"errors": {"query": "Required parameter "
                                                   "missing or invalid"}},
                         outcome="bad_body")
        try:
            p = GQLParser(gql_tokens(query), variables)
            first = next((v for k, v in p.t if k == "name"), None)
            if first == "mutation":
                return self.mutation(p)
            return self.read(p)
        except (GraphQLError, IndexError) as e:
            msg = str(e) or "Syntax error: unexpected end of document"
            return self.top_error(msg, "GRAPHQL_PARSE_FAILED")

    # -- inventorySetQuantities --------------------------------------------
    def mutation(self, p):
        calls = p.fields("inventorySetQuantities")
        if len(calls) != 1:
            return self.top_error("The mock serves exactly one "
                                  "inventorySetQuantities per mutation",
                                  "UNSUPPORTED")
        alias, args, directives, _ = calls[0]
        if self.rate_limited(SHOPIFY_MUTATION_COST):
            self.stats["throttled"] += 1
            return self.throttle_reply()
        idem = directives.get("idempotent")
        if idem is None:
            return self.top_error("The @idempotent directive is required "
                                  "for inventorySetQuantities",
                                  "BAD_REQUEST")
        key = idem.get("key")
        if not isinstance(key, str) or not key:
            return self.top_error("@idempotent(key:) must be a non-empty "
                                  "string", "BAD_REQUEST")
        inp = args.get("input")
        problem = self.input_problem(inp)
        if problem:
            return self.top_error(problem, "INVALID_VARIABLE")
        fingerprint = json.dumps(inp, sort_keys=True)
        seen = self.idempotency.get(key)
        if seen is not None:
            if seen["fingerprint"] != fingerprint:
                return self.payload(alias, [self.user_error(
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", ["input"],
                    "The same idempotency key cannot be used with "
                    "different operation parameters.")],
                    outcome="idempotency_mismatch")
            if seen["failed"]:
                return self.payload(alias, [self.user_error(
                    "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED", ["input"],
                    "A previous request with this idempotency key failed. "
                    "Retry with a new idempotency key.")],
                    outcome="idempotency_previous_failed")
            # Same key, same input: the original answer, applied once.
            self.stats["replayed"] += 1
            return Reply(200, seen["obj"], outcome="replayed")
        errors = self.validate_quantities(inp)
        if errors:
            reply = self.payload(alias, errors,
                                 outcome="user_errors:" + ",".join(
                                     sorted({e["code"] for e in errors})))
            self.stats["rejected"] += 1
            self.idempotency[key] = {"fingerprint": fingerprint,
                                     "obj": reply.obj, "failed": True}
            return reply
        changes = []
        for q in inp["quantities"]:
            k = q["inventoryItemId"] + "@" + q["locationId"]
            before = self.qty(k, 0)
            self.set_qty(k, q["quantity"])
            changes.append({"name": "available",
                            "delta": q["quantity"] - before,
                            "quantityAfterChange": q["quantity"],
                            "item": {"id": q["inventoryItemId"]},
                            "location": {"id": q["locationId"]}})
            self.stats["applied"] += 1
        self.group_seq += 1
        group = {"id": "gid://shopify/InventoryAdjustmentGroup/%d"
                       % self.group_seq,
                 "createdAt": now_iso(), "reason": inp["reason"],
                 "referenceDocumentUri": inp.get("referenceDocumentUri"),
                 "changes": changes}
        reply = self.payload(alias, [], group, outcome="applied")
        self.idempotency[key] = {"fingerprint": fingerprint,
                                 "obj": reply.obj, "failed": False}
        return reply

    def user_error(self, code, field, message):
        return {"code": code, "field": field, "message": message}

    def payload(self, alias, errors, group=None, outcome="ok"):
        return Reply(200, {
            "data": {alias: {"inventoryAdjustmentGroup": group,
                             "userErrors": errors}},
            "extensions": self.cost_extension(SHOPIFY_MUTATION_COST)},
            outcome=outcome)

    @staticmethod
    def input_problem(inp):
        """Type errors that GraphQL rejects before the mutation runs."""
        if not isinstance(inp, dict):
            return "Variable $input of type InventorySetQuantitiesInput! " \
                   "was provided invalid value"
        for f in ("name", "reason", "quantities"):
            if inp.get(f) is None:
                return "InventorySetQuantitiesInput.%s: Expected value to " \
                       "not be null" % f
        known = {"name", "reason", "referenceDocumentUri", "quantities"}
        for f in inp:
            if f not in known:
                return "InventorySetQuantitiesInput.%s: Field is not " \
                       "defined on InventorySetQuantitiesInput" % f
        if not isinstance(inp["quantities"], list):
            return "quantities: Expected a list"
        for i, q in enumerate(inp["quantities"]):
            if not isinstance(q, dict):
                return "quantities[%d]: Expected an object" % i
            for f in ("inventoryItemId", "locationId", "quantity"):
                if q.get(f) is None:
                    return "quantities[%d].%s: Expected value to not be " \
                           "null" % (i, f)
            if "changeFromQuantity" not in q:
                # 2026-04: the field must be given, null to skip the check.
                return "quantities[%d].changeFromQuantity: Expected value " \
                       "to be provided (null skips the check)" % i
            for f in q:
                if f not in ("inventoryItemId", "locationId", "quantity",
                             "changeFromQuantity"):
                    return "quantities[%d].%s: Field is not defined on " \
                           "InventoryQuantityInput" % (i, f)
            if not is_int(q["quantity"]) or not (
                    q["changeFromQuantity"] is None or
                    is_int(q["changeFromQuantity"])):
                return "quantities[%d]: quantity and changeFromQuantity " \
                       "must be Int" % i
        return None

    def validate_quantities(self, inp):
        errs = []
        if inp["name"] != "available":
            errs.append(self.user_error(
                "INVALID_NAME", ["input", "name"],
                "The mock keeps only the 'available' quantity."))
        if inp["reason"] not in SHOPIFY_REASONS:
            errs.append(self.user_error("INVALID_REASON", ["input", "reason"],
                                        "The specified reason is invalid."))
        uri = inp.get("referenceDocumentUri")
        if uri is not None and (not isinstance(uri, str) or ":" not in uri or
                                uri.startswith("gid://shopify/")):
            errs.append(self.user_error(
                "INVALID_REFERENCE_DOCUMENT",
                ["input", "referenceDocumentUri"],
                "The specified reference document is invalid."))
        seen = set()
        for i, q in enumerate(inp["quantities"]):
            field = ["input", "quantities", str(i)]
            item, loc = q["inventoryItemId"], q["locationId"]
            key = "%s@%s" % (item, loc)
            if not isinstance(item, str) or not SHOPIFY_ITEM_RE.match(item) \
                    or (self.config["strict"] and key not in self.quantities):
                errs.append(self.user_error(
                    "INVALID_INVENTORY_ITEM", field + ["inventoryItemId"],
                    "The specified inventory item could not be found."))
                continue
            if not isinstance(loc, str) or not SHOPIFY_LOCATION_RE.match(loc):
                errs.append(self.user_error(
                    "INVALID_LOCATION", field + ["locationId"],
                    "The specified location could not be found."))
                continue
            if key in seen:
                errs.append(self.user_error(
                    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", field,
                    "The same inventory item and location appear twice."))
            seen.add(key)
            if q["quantity"] < 0:
                errs.append(self.user_error(
                    "INVALID_QUANTITY_NEGATIVE", field + ["quantity"],
                    "The quantity can't be negative."))
            elif q["quantity"] > 1000000000:
                errs.append(self.user_error(
                    "INVALID_QUANTITY_TOO_HIGH", field + ["quantity"],
                    "The total quantity can't be higher than 1,000,000,000."))
            cfq = q["changeFromQuantity"]
            if cfq is not None and cfq != self.qty(key, 0):
                self.stats["stale"] += 1
                errs.append(self.user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    field + ["changeFromQuantity"],
                    "The changeFromQuantity value does not match persisted "
                    "value."))
        return errs

    # -- reads ---------------------------------------------------------------
    def read(self, p):
        items = p.fields("inventoryItem")
        if not items:
            return self.top_error("The mock serves inventorySetQuantities "
                                  "and inventoryItem only", "UNSUPPORTED")
        if self.rate_limited(SHOPIFY_QUERY_COST * len(items)):
            self.stats["throttled"] += 1
            return self.throttle_reply(SHOPIFY_QUERY_COST * len(items))
        levels = p.fields("inventoryLevel")
        if len(levels) != len(items):
            return self.top_error("each inventoryItem needs one "
                                  "inventoryLevel(locationId:)",
                                  "UNSUPPORTED")
        data = {}
        for (alias, args, _, _), (_, largs, _, _) in zip(items, levels):
            item, loc = args.get("id"), largs.get("locationId")
            key = "%s@%s" % (item, loc)
            if not isinstance(item, str) or not SHOPIFY_ITEM_RE.match(item) \
                    or (self.config["strict"] and key not in self.quantities):
                data[alias] = None
                continue
            n = self.qty(key)
            if n is None and self.config["strict"]:
                level = None
            else:
                level = {"id": "gid://shopify/InventoryLevel/%s?"
                               "inventory_item_id=%s"
                               % (loc.rsplit("/", 1)[-1],
                                  item.rsplit("/", 1)[-1]),
                         "location": {"id": loc},
                         "quantities": [{"name": "available",
                                         "quantity": n or 0}]}
            data[alias] = {"id": item, "inventoryLevel": level}
        return Reply(200, {"data": data, "extensions": self.cost_extension(
            SHOPIFY_QUERY_COST * len(items))}, outcome="read")

    # -- webhook helper ------------------------------------------------------
    def platform_control(self, method, route, query, spec):
        if route == "/_webhook" and method == "POST":
            return 200, self.webhook(spec)
        return 404, {"error": "no such control endpoint"}

    def webhook(self, spec):
        """Change a quantity behind the client's back and sign the
        inventory_levels/update webhook Shopify would send for it."""
        item, loc = spec["inventory_item_id"], spec["location_id"]
        key = "%s@%s" % (item, loc)
        self.check_key(key)
        if "available" in spec:
            if not is_int(spec["available"]):
                raise ControlError("available must be an integer")
            self.set_qty(key, spec["available"])
        item_n = int(item.rsplit("/", 1)[-1])
        loc_n = int(loc.rsplit("/", 1)[-1])
        body = json.dumps({
            "inventory_item_id": item_n, "location_id": loc_n,
            "available": self.qty(key, 0), "updated_at": now_iso(),
            "admin_graphql_api_id": "gid://shopify/InventoryLevel/%d?"
                                    "inventory_item_id=%d" % (loc_n, item_n)},
            separators=(",", ":")).encode()
        secret = spec.get("secret", self.config["webhook_secret"])
        sig = base64.b64encode(hmac_sha256(secret, body).digest()).decode()
        self.webhooks += 1
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "inventory_levels/update",
            "X-Shopify-Hmac-Sha256": sig,
            "X-Shopify-Shop-Domain": self.config["shop_domain"],
            "X-Shopify-API-Version": self.config["min_api_version"],
            "X-Shopify-Webhook-Id": spec.get("webhook_id",
                                             str(uuid.uuid4())),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": now_iso()}
        return to_deliver(spec.get("url"), headers, body)


def to_deliver(url, headers, body):
    """A control answer that handle() turns into deliver(...)."""
    return {"_deliver": (url, headers, body)}


def deliver(url, headers, body):
    """Return the signed webhook; POST it to `url` first if given."""
    out = {"headers": headers, "body": body.decode()}
    if url:
        import urllib.request
        import urllib.error
        req = urllib.request.Request(url, data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                out["delivered"] = {"status": r.status}
        except urllib.error.HTTPError as e:
            out["delivered"] = {"status": e.code}
        except OSError as e:
            out["delivered"] = {"status": None, "error": str(e)}
    return out


# ---------------------------------------------------------------------------
# TikTok Shop
#
# Follows TikTok Shop Partner Center's API reference for version 202309:
# "Update Inventory" (POST /product/202309/products/{product_id}/inventory/
# update), "Inventory Search" (POST /product/202309/inventory/search), the
# "Sign your API request" guide, the common response envelope
# {code, message, data, request_id}, and the authorization guide's token
# refresh (GET /api/v2/token/refresh on the auth host).
# ---------------------------------------------------------------------------

# code -> (HTTP status, message).  0 and 106001 match TikTok's published
# answers; the other numbers are this mock's choice within TikTok's code
# families and are what pg_ves's classification table is tested against.
TIKTOK_CODES = {
    0: (200, "Success"),
    105001: (401, "Invalid credentials. The access token is invalid."),
    105002: (401, "Expired credentials. The access token has expired."),
    106001: (401, "Invalid credentials. The 'sign' query parameter is "
                  "invalid."),
    106002: (401, "Invalid credentials. The app_key is invalid."),
    106003: (401, "Invalid timestamp. It must be within 5 minutes of "
                  "server time."),
    106004: (401, "Invalid shop_cipher."),
    36009003: (400, "Invalid request body."),
    36009004: (429, "Too many requests. The rate limit was exceeded."),
    36009005: (500, "Internal error. Please retry."),
    12052048: (404, "Product not found."),
    12052049: (404, "SKU not found in this product."),
    12052050: (400, "Quantity must be between 0 and 99999."),
    36004004: (400, "Invalid refresh_token."),
    36004005: (401, "Invalid app_secret."),
}


def tiktok_sign(app_secret, path, query_pairs, body):
    """Lowercase hex HMAC-SHA256(app_secret, secret + path + sorted
    name+value pairs (without sign and access_token) + body + secret)."""
    params = sorted((k, v) for k, v in query_pairs
                    if k not in ("sign", "access_token"))
    text = app_secret.encode() + path.encode() + \
        "".join(k + v for k, v in params).encode() + body + \
        app_secret.encode()
    return hmac_sha256(app_secret, text).hexdigest()


class TikTok(Platform):
    name = "tiktok"
    DEFAULTS = {
        "app_key": "tts_app_key",
        "app_secret": "tts_app_secret",
        "access_token": "tts_access_token_0",
        "refresh_token": "tts_refresh_token",
        "shop_cipher": "ROW_pgves_test",
        "warehouse_id": "7000000000000000001",
        "access_token_ttl": 604800,
        # TikTok Shop rotates refresh tokens: with rotate_refresh_token each
        # refresh answers a new refresh token and the one it used stops
        # working (a client that keeps the old one fails authentication).
        "rotate_refresh_token": False,
        "timestamp_window": 300,
        "strict": False,
        "rate_limit": None,
    }

    def reset_platform(self):
        # token -> expiry (unix time).  The configured token starts valid.
        self.tokens = {self.config["access_token"]:
                       time.time() + self.config["access_token_ttl"]}
        self.token_seq = 0
        self.req_seq = 0

    def check_key(self, key):
        if not re.match(r"^[^/@]+/[^/@]+@[^/@]+$", key):
            raise ControlError("TikTok key is 'product_id/sku_id@"
                               "warehouse_id'")

    def answer(self, code, data=None, outcome=None):
        status, msg = TIKTOK_CODES[code]
        self.req_seq += 1
        obj = {"code": code, "message": msg,
               "request_id": "2026%016dPGVES" % self.req_seq}
        obj["data"] = {} if data is None and code == 0 else data
        return Reply(status, obj, outcome=outcome or
                     ("ok" if code == 0 else "code:%d" % code))

    def throttle_reply(self):
        return self.answer(36009004, outcome="throttled")

    def expired_reply(self):
        return self.answer(105002)

    def server_error_reply(self, status):
        r = self.answer(36009005)
        r.status = status
        return r

    def route(self, method, parts, headers, body):
        path = parts.path
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if path == "/api/v2/token/refresh":
            return self.refresh(method, path, dict(pairs))
        m = re.match(r"^/product/202309/products/([^/]+)/inventory/update$",
                     path)
        if not (m or path == "/product/202309/inventory/search"):
            r = Reply(404, {"code": 40006, "message": "Invalid path",
                            "data": None, "request_id": ""},
                      outcome="not_found")
            return r
        if method != "POST":
            return Reply(405, {"code": 40005, "message": "Method not "
                               "allowed", "data": None, "request_id": ""},
                         outcome="bad_method")
        fault = self.take_fault(path)
        if fault:
            return self.fault_reply(fault)
        bad = self.check_request(path, pairs, headers, body)
        if bad:
            return bad
        if self.rate_limited():
            self.stats["throttled"] += 1
            return self.throttle_reply()
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return self.answer(36009003, outcome="bad_body")
        if m:
            return self.update(m.group(1), req)
        return self.search(req)

    def check_request(self, path, pairs, headers, body):
        q = dict(pairs)
        if q.get("app_key") != self.config["app_key"]:
            r = self.answer(106002)
            r.outcome = self.auth_failed("app_key")
            return r
        try:
            ts = int(q.get("timestamp", ""))
        except ValueError:
            ts = None
        if ts is None or abs(time.time() - ts) > \
                self.config["timestamp_window"]:
            r = self.answer(106003)
            r.outcome = self.auth_failed("timestamp")
            return r
        want = tiktok_sign(self.config["app_secret"], path, pairs, body)
        if not hmac.compare_digest(q.get("sign", ""), want):
            r = self.answer(106001)
            r.outcome = self.auth_failed("sign")
            return r
        token = headers.get("x-tts-access-token", "")
        expiry = self.tokens.get(token)
        if expiry is None:
            r = self.answer(105001)
            r.outcome = self.auth_failed("missing_token" if not token
                                         else "unknown_token")
            return r
        if expiry <= time.time():
            r = self.answer(105002)
            r.outcome = self.expired()
            return r
        if q.get("shop_cipher") != self.config["shop_cipher"]:
            r = self.answer(106004)
            r.outcome = self.auth_failed("shop_cipher")
            return r
        if "json" not in headers.get("content-type", ""):
            return self.answer(36009003, outcome="bad_content_type")
        return None

    def update(self, product_id, req):
        skus = req.get("skus")
        if set(req) != {"skus"} or not isinstance(skus, list) or not skus:
            return self.answer(36009003, outcome="bad_body")
        plan = []
        for s in skus:
            if not isinstance(s, dict) or not isinstance(s.get("id"), str) \
                    or not isinstance(s.get("inventory"), list) \
                    or not s["inventory"]:
                return self.answer(36009003, outcome="bad_body")
            for inv in s["inventory"]:
                if not isinstance(inv, dict) or not is_int(
                        inv.get("quantity")) or not set(inv) <= {
                        "warehouse_id", "quantity"}:
                    return self.answer(36009003, outcome="bad_body")
                if not 0 <= inv["quantity"] <= 99999:
                    return self.answer(12052050)
                wh = inv.get("warehouse_id", self.config["warehouse_id"])
                if not isinstance(wh, str):
                    return self.answer(36009003, outcome="bad_body")
                plan.append(("%s/%s@%s" % (product_id, s["id"], wh),
                             inv["quantity"]))
        if self.config["strict"]:
            prefix = product_id + "/"
            if not any(k.startswith(prefix) for k in self.quantities):
                self.stats["rejected"] += 1
                return self.answer(12052048)
            for k, _ in plan:
                if k not in self.quantities:
                    self.stats["rejected"] += 1
                    return self.answer(12052049)
        for k, n in plan:
            self.set_qty(k, n)
            self.stats["applied"] += 1
        return self.answer(0, outcome="applied")

    def search(self, req):
        pids, sids = req.get("product_ids"), req.get("sku_ids")
        if (pids is None) == (sids is None) or not isinstance(
                pids or sids, list):
            return self.answer(36009003, outcome="bad_body")
        by_product = {}
        for k, n in sorted(self.quantities.items()):
            pid, rest = k.split("/", 1)
            sid, wh = rest.split("@", 1)
            if (pids and pid in pids) or (sids and sid in sids):
                skus = by_product.setdefault(pid, {})
                sku = skus.setdefault(sid, {"id": sid,
                                            "total_available_quantity": 0,
                                            "total_committed_quantity": 0,
                                            "warehouse_inventory": []})
                sku["total_available_quantity"] += n
                sku["warehouse_inventory"].append({
                    "warehouse_id": wh, "available_quantity": n,
                    "committed_quantity": 0})
        inventory = [{"product_id": pid, "skus": list(skus.values())}
                     for pid, skus in by_product.items()]
        return self.answer(0, {"inventory": inventory}, outcome="read")

    def refresh(self, method, path, q):
        if method != "GET":
            return Reply(405, {"code": 40005, "message": "Method not "
                               "allowed", "data": None, "request_id": ""},
                         outcome="bad_method")
        fault = self.take_fault(path, token_endpoint=True)
        if fault:
            return self.fault_reply(fault)
        if q.get("app_key") != self.config["app_key"]:
            r = self.answer(106002)
            r.outcome = self.auth_failed("refresh_app_key")
            return r
        if q.get("app_secret") != self.config["app_secret"]:
            r = self.answer(36004005)
            r.outcome = self.auth_failed("refresh_app_secret")
            return r
        if q.get("grant_type") != "refresh_token" or \
                q.get("refresh_token") != self.config["refresh_token"]:
            r = self.answer(36004004)
            r.outcome = self.auth_failed("refresh_token")
            return r
        self.token_seq += 1
        self.stats["token_grants"] += 1
        token = "tts_access_token_%d" % self.token_seq
        expiry = int(time.time()) + int(self.config["access_token_ttl"])
        self.tokens[token] = expiry
        if self.config["rotate_refresh_token"]:
            self.config["refresh_token"] = "tts_refresh_token_%d" \
                % self.token_seq
        return self.answer(0, {
            "access_token": token, "access_token_expire_in": expiry,
            "refresh_token": self.config["refresh_token"],
            "refresh_token_expire_in": expiry + 86400 * 365,
            "open_id": "pgves_open_id", "seller_name": "pg_ves test shop",
            "seller_base_region": "US", "user_type": 0,
            "granted_scopes": ["seller.product.basic",
                               "seller.product.write"]},
            outcome="token_granted")

    def platform_control(self, method, route, query, spec):
        answer = self.token_control(method, route)
        if answer:
            return answer
        if route == "/_sign_webhook" and method == "POST":
            # TikTok Shop webhook signature: Authorization = hex
            # HMAC-SHA256(app_secret, app_key + raw body).
            body = spec_body(spec)
            sig = hmac_sha256(spec.get("secret", self.config["app_secret"]),
                              self.config["app_key"].encode() + body
                              ).hexdigest()
            return 200, to_deliver(spec.get("url"), {
                "Content-Type": "application/json",
                "Authorization": sig}, body)
        return 404, {"error": "no such control endpoint"}


def spec_body(spec):
    b = spec.get("body", {})
    if isinstance(b, str):
        return b.encode()
    return json.dumps(b, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------
# Amazon SP-API
#
# Follows Amazon's Selling Partner API documentation: Login with Amazon
# token exchange (POST /auth/o2/token, refresh_token grant), the Listings
# Items API 2021-08-01 (patchListingsItem, getListingsItem with
# includedData=fulfillmentAvailability, ListingsItemSubmissionResponse with
# status ACCEPTED / INVALID and issues), the SP-API error response
# {"errors":[{code,message,details}]} and its usage-plan rate-limit header
# x-amzn-RateLimit-Limit.
# ---------------------------------------------------------------------------

class Amazon(Platform):
    name = "amazon"
    DEFAULTS = {
        "seller_id": "A1PGVESTEST",
        "marketplace_ids": ["ATVPDKIKX0DER"],
        "client_id": "amzn1.application-oa2-client.pgvestest",
        "client_secret": "amzn-client-secret",
        "refresh_token": "Atzr|pgves-refresh-token",
        "expires_in": 3600,
        # Listings Items patch: 5 requests/s, burst 5 (enforced only when
        # rate_limit is set; the header always says 5.0).
        "rate_limit": None,
        "rate_limit_header": "5.0",
        "strict": False,
    }

    def reset_platform(self):
        self.tokens = {}  # access token -> expiry
        self.token_seq = 0
        self.submission_seq = 0

    def check_key(self, key):
        if not key or "/" in key:
            raise ControlError("Amazon key is the seller SKU")

    def errors(self, status, code, message, outcome=None, headers=()):
        return Reply(status, {"errors": [{"code": code, "message": message,
                                          "details": ""}]},
                     headers=list(headers) + self.common_headers(),
                     outcome=outcome or "error:%s" % code)

    def common_headers(self):
        return [("x-amzn-RequestId", str(uuid.uuid4()))]

    def throttle_reply(self):
        return self.errors(429, "QuotaExceeded", "You exceeded your quota "
                           "for the requested resource.", "throttled",
                           [("x-amzn-RateLimit-Limit",
                             self.config["rate_limit_header"])])

    def expired_reply(self):
        return self.errors(403, "Unauthorized", "The access token you "
                           "provided has expired.", "expired_token")

    def server_error_reply(self, status):
        return self.errors(status, "InternalFailure", "We encountered an "
                           "internal error. Please try again.")

    def route(self, method, parts, headers, body):
        path = parts.path
        if path == "/auth/o2/token":
            return self.token(method, path, headers, body)
        m = re.match(r"^/listings/2021-08-01/items/([^/]+)/([^/]+)$", path)
        if not m:
            return self.errors(404, "NotFound", "Resource not found.",
                               "not_found")
        if method not in ("PATCH", "GET"):
            return self.errors(405, "MethodNotAllowed",
                               "Method not allowed.", "bad_method")
        fault = self.take_fault(path)
        if fault:
            return self.fault_reply(fault)
        token = headers.get("x-amz-access-token", "")
        expiry = self.tokens.get(token)
        if expiry is None:
            r = self.errors(403, "Unauthorized", "Access to requested "
                            "resource is denied.")
            r.outcome = self.auth_failed("missing_token" if not token
                                         else "unknown_token")
            return r
        if expiry <= time.time():
            r = self.expired_reply()
            r.outcome = self.expired()
            return r
        seller = m.group(1)
        sku = m.group(2)
        sku = unquote(sku)
        if seller != self.config["seller_id"]:
            r = self.errors(403, "Unauthorized", "Access to requested "
                            "resource is denied.")
            r.outcome = self.auth_failed("seller_id")
            return r
        q = parse_qs(parts.query)
        mps = ",".join(q.get("marketplaceIds", [])).split(",")
        if mps == [""]:
            return self.errors(400, "InvalidInput", "Missing required "
                               "parameter marketplaceIds.", "bad_query")
        if any(mp not in self.config["marketplace_ids"] for mp in mps):
            return self.errors(400, "InvalidInput", "Invalid marketplaceIds "
                               "%s." % ",".join(mps), "bad_query")
        if self.rate_limited():
            self.stats["throttled"] += 1
            return self.throttle_reply()
        if method == "GET":
            return self.get_item(sku, q)
        return self.patch_item(sku, headers, body)

    def submission(self, sku, status, issues, outcome):
        self.submission_seq += 1
        return Reply(200, {"sku": sku, "status": status,
                           "submissionId": "%032x" % (0xA11CE000 +
                                                      self.submission_seq),
                           "issues": issues},
                     headers=[("x-amzn-RateLimit-Limit",
                               self.config["rate_limit_header"])] +
                     self.common_headers(), outcome=outcome)

    def patch_item(self, sku, headers, body):
        if "json" not in headers.get("content-type", ""):
            return self.errors(415, "InvalidInput", "Content-Type must be "
                               "application/json.", "bad_content_type")
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return self.errors(400, "InvalidInput", "Request body is not "
                               "valid JSON.", "bad_body")
        issues = []

        def issue(code, message, attrs=("fulfillment_availability",)):
            issues.append({"code": code, "message": message,
                           "severity": "ERROR",
                           "attributeNames": list(attrs)})

        if not isinstance(req.get("productType"), str) or \
                not req["productType"]:
            return self.errors(400, "InvalidInput", "productType is "
                               "required.", "bad_body")
        patches = req.get("patches")
        if not isinstance(patches, list) or not patches:
            return self.errors(400, "InvalidInput", "patches is required "
                               "and must not be empty.", "bad_body")
        quantity = None
        for p in patches:
            if not isinstance(p, dict) or p.get("op") not in (
                    "add", "replace", "delete", "merge"):
                return self.errors(400, "InvalidInput", "Each patch needs "
                                   "op add, replace, merge or delete.",
                                   "bad_body")
            if p.get("path") != "/attributes/fulfillment_availability":
                issue("90220", "The mock accepts only "
                      "/attributes/fulfillment_availability patches.",
                      [str(p.get("path"))])
                continue
            if p["op"] != "replace":
                issue("90220", "fulfillment_availability must be replaced.")
                continue
            val = p.get("value")
            if not isinstance(val, list) or len(val) != 1 or \
                    not isinstance(val[0], dict):
                issue("4000001", "value must be a list of one "
                      "fulfillment_availability entry.")
                continue
            v = val[0]
            if v.get("fulfillment_channel_code") != "DEFAULT":
                issue("4000001", "fulfillment_channel_code must be DEFAULT "
                      "for seller-fulfilled quantity.")
            elif not is_int(v.get("quantity")) or v["quantity"] < 0:
                issue("4000001", "quantity must be a non-negative integer.")
            elif set(v) - {"fulfillment_channel_code", "quantity",
                           "lead_time_to_ship_max_days",
                           "restock_date", "is_inventory_available"}:
                issue("4000001", "Unknown fulfillment_availability field.")
            else:
                quantity = v["quantity"]
        if not issues and self.config["strict"] and \
                sku not in self.quantities:
            issue("18", "The SKU is not in the seller's catalog.", [])
        if issues:
            self.stats["rejected"] += 1
            return self.submission(sku, "INVALID", issues, "invalid")
        if quantity is not None:
            self.set_qty(sku, quantity)
            self.stats["applied"] += 1
        return self.submission(sku, "ACCEPTED", [], "applied")

    def get_item(self, sku, q):
        n = self.qty(sku)
        if n is None:
            return self.errors(404, "NOT_FOUND", "SKU '%s' not found in "
                               "marketplace." % sku, "not_found")
        included = ",".join(q.get("includedData", ["summaries"])).split(",")
        obj = {"sku": sku}
        if "fulfillmentAvailability" in included:
            obj["fulfillmentAvailability"] = [
                {"fulfillmentChannelCode": "DEFAULT", "quantity": n}]
        if "summaries" in included:
            obj["summaries"] = [{"marketplaceId": mp, "asin": "B0PGVES000",
                                 "productType": "PRODUCT",
                                 "status": ["BUYABLE"]}
                                for mp in self.config["marketplace_ids"]]
        return Reply(200, obj, headers=[("x-amzn-RateLimit-Limit",
                                         self.config["rate_limit_header"])] +
                     self.common_headers(), outcome="read")

    def token(self, method, path, headers, body):
        if method != "POST":
            return Reply(405, {"error": "invalid_request",
                               "error_description": "POST required"},
                         outcome="bad_method")
        fault = self.take_fault(path, token_endpoint=True)
        if fault:
            return self.fault_reply(fault)
        if "x-www-form-urlencoded" not in headers.get("content-type", ""):
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Content-Type must be "
                               "application/x-www-form-urlencoded"},
                         outcome="bad_content_type")
        f = dict(parse_qsl(body.decode("utf-8", "replace"),
                           keep_blank_values=True))
        if f.get("grant_type") != "refresh_token":
            return Reply(400, {"error": "unsupported_grant_type",
                               "error_description": "The authorization "
                               "grant type is not supported"},
                         outcome="bad_grant_type")
        if f.get("client_id") != self.config["client_id"] or \
                f.get("client_secret") != self.config["client_secret"]:
            r = Reply(401, {"error": "invalid_client",
                            "error_description": "Client authentication "
                            "failed"})
            r.outcome = self.auth_failed("lwa_client")
            return r
        if f.get("refresh_token") != self.config["refresh_token"]:
            r = Reply(400, {"error": "invalid_grant",
                            "error_description": "The request has an "
                            "invalid grant parameter : refresh_token"})
            r.outcome = self.auth_failed("lwa_refresh_token")
            return r
        self.token_seq += 1
        self.stats["token_grants"] += 1
        token = "Atza|pgves-access-%d" % self.token_seq
        ttl = int(self.config["expires_in"])
        self.tokens[token] = time.time() + ttl
        return Reply(200, {"access_token": token, "token_type": "bearer",
                           "expires_in": ttl,
                           "refresh_token": self.config["refresh_token"]},
                     outcome="token_granted")

    def platform_control(self, method, route, query, spec):
        return self.token_control(method, route) or \
            (404, {"error": "no such control endpoint"})


# ---------------------------------------------------------------------------
# Meta catalog (Graph API)
#
# Follows Meta's Marketing API / Commerce Platform documentation: the
# Catalog Batch API (POST /{catalog_id}/items_batch with item_type and
# requests, returning handles; GET /{catalog_id}/check_batch_request_status),
# the product catalog's products edge with a retailer_id filter for reads,
# and the Graph API error object {"error":{message,type,code,
# error_subcode,fbtrace_id}} with its rate-limit (4, 17, 32, 613) and
# access-token (190) codes.
# ---------------------------------------------------------------------------

META_BATCH_LIMIT = 5000


class Meta(Platform):
    name = "meta"
    DEFAULTS = {
        "catalog_id": "880000000000001",
        "access_token": "meta-access-token",
        "app_secret": "meta-app-secret",
        # Number of check_batch_request_status calls that still answer
        # "started" before a batch finishes (and is applied).  0: a batch is
        # applied when posted and finished at the first check.
        "pending_checks": 0,
        # Retailer ids whose updates fail inside a batch (per-item errors).
        "reject_ids": [],
        "batch_limit": META_BATCH_LIMIT,
        "throttle_code": 4,
        "strict": False,
        "rate_limit": None,
    }

    def reset_platform(self):
        self.batches = {}   # handle -> batch
        self.handle_seq = 0
        self.expired_tokens = set()

    def check_key(self, key):
        if not key:
            raise ControlError("Meta key is the retailer_id")

    def error(self, status, code, message, subcode=None,
              etype="OAuthException", outcome=None):
        e = {"message": message, "type": etype, "code": code,
             "fbtrace_id": "Apgves%08d" % self.seq}
        if subcode is not None:
            e["error_subcode"] = subcode
        return Reply(status, {"error": e},
                     outcome=outcome or "error:%d" % code)

    def throttle_reply(self):
        code = int(self.config["throttle_code"])
        msg = {4: "(#4) Application request limit reached",
               17: "(#17) User request limit reached",
               32: "(#32) Page request limit reached",
               613: "(#613) Calls to this api have exceeded the rate "
                    "limit."}.get(code, "(#%d) Rate limit reached" % code)
        return self.error(400, code, msg, outcome="throttled")

    def expired_reply(self):
        return self.error(400, 190, "Error validating access token: Session "
                          "has expired.", subcode=463,
                          outcome="expired_token")

    def server_error_reply(self, status):
        return self.error(status, 2, "An unexpected error has occurred. "
                          "Please retry your request later.",
                          etype="OAuthException")

    def route(self, method, parts, headers, body):
        m = re.match(r"^/(v\d+\.\d+)/([^/]+)/(items_batch|"
                     r"check_batch_request_status|products)$", parts.path)
        if not m:
            return self.error(400, 100, "Unsupported request - method type "
                              "or path not served by the mock",
                              etype="GraphMethodException",
                              outcome="not_found")
        catalog, edge = m.group(2), m.group(3)
        want = "POST" if edge == "items_batch" else "GET"
        if method != want:
            return self.error(400, 100, "Unsupported %s request." % method,
                              etype="GraphMethodException",
                              outcome="bad_method")
        fault = self.take_fault(parts.path)
        if fault:
            return self.fault_reply(fault)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        ctype = headers.get("content-type", "")
        if method == "POST" and body:
            if "json" in ctype:
                try:
                    obj = json.loads(body)
                    if not isinstance(obj, dict):
                        raise ValueError
                except ValueError:
                    return self.error(400, 100, "Invalid JSON body",
                                      etype="GraphMethodException",
                                      outcome="bad_body")
                params.update(obj)
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace"),
                                        keep_blank_values=True))
        token = params.get("access_token")
        auth = headers.get("authorization", "")
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if token in self.expired_tokens:
            r = self.expired_reply()
            r.outcome = self.expired()
            return r
        if token != self.config["access_token"]:
            r = self.error(400, 190, "Invalid OAuth access token - Cannot "
                           "parse access token")
            r.outcome = self.auth_failed("missing_token" if not token
                                         else "wrong_token")
            return r
        if catalog != self.config["catalog_id"]:
            return self.error(400, 100, "Unsupported get request. Object "
                              "with ID '%s' does not exist" % catalog,
                              etype="GraphMethodException",
                              outcome="unknown_catalog")
        if self.rate_limited():
            self.stats["throttled"] += 1
            return self.throttle_reply()
        if edge == "items_batch":
            return self.items_batch(params)
        if edge == "check_batch_request_status":
            return self.batch_status(params)
        return self.products(params)

    def items_batch(self, params):
        if params.get("item_type") != "PRODUCT_ITEM":
            return self.error(400, 100, "(#100) Param item_type must be "
                              "PRODUCT_ITEM", etype="OAuthException",
                              outcome="bad_item_type")
        reqs = params.get("requests")
        if isinstance(reqs, str):
            try:
                reqs = json.loads(reqs)
            except ValueError:
                reqs = None
        if not isinstance(reqs, list) or not reqs:
            return self.error(400, 100, "(#100) Param requests must be a "
                              "non-empty JSON array", outcome="bad_body")
        if len(reqs) > int(self.config["batch_limit"]):
            return self.error(400, 100, "(#100) Param requests must have at "
                              "most %d elements" % self.config["batch_limit"],
                              outcome="batch_too_large")
        errors, plan = [], []
        for line, r in enumerate(reqs):
            data = r.get("data") if isinstance(r, dict) else None
            rid = data.get("id") if isinstance(data, dict) else None
            if not isinstance(r, dict) or r.get("method") not in (
                    "CREATE", "UPDATE", "DELETE"):
                errors.append({"line": line, "id": rid, "message":
                               "method must be CREATE, UPDATE or DELETE"})
            elif r["method"] != "UPDATE":
                errors.append({"line": line, "id": rid, "message":
                               "the mock serves UPDATE only"})
            elif not isinstance(rid, str) or not rid:
                errors.append({"line": line, "id": rid,
                               "message": "data.id (retailer_id) is required"})
            elif not is_int(data.get("quantity_to_sell_on_facebook")) or \
                    data["quantity_to_sell_on_facebook"] < 0:
                errors.append({"line": line, "id": rid, "message":
                               "quantity_to_sell_on_facebook must be a "
                               "non-negative integer"})
            elif rid in self.config["reject_ids"]:
                errors.append({"line": line, "id": rid, "message":
                               "Item update rejected (injected by the mock)"})
            elif self.config["strict"] and rid not in self.quantities:
                errors.append({"line": line, "id": rid, "message":
                               "Product item with retailer_id '%s' does not "
                               "exist" % rid})
            else:
                plan.append((rid, data["quantity_to_sell_on_facebook"]))
        self.handle_seq += 1
        handle = "AcPgVes%012d" % self.handle_seq
        batch = {"handle": handle, "errors": errors, "plan": plan,
                 "pending": int(self.config["pending_checks"]),
                 "applied": False, "total": len(reqs)}
        self.batches[handle] = batch
        self.stats["rejected"] += len(errors)
        if batch["pending"] == 0:
            self.apply_batch(batch)
        return Reply(200, {"handles": [handle]}, outcome="batch:%d/%d" % (
            len(plan), len(reqs)))

    def apply_batch(self, batch):
        if not batch["applied"]:
            for rid, n in batch["plan"]:
                self.set_qty(rid, n)
                self.stats["applied"] += 1
            batch["applied"] = True

    def batch_status(self, params):
        b = self.batches.get(params.get("handle"))
        if b is None:
            return self.error(400, 100, "(#100) Invalid handle",
                              outcome="unknown_handle")
        if b["pending"] > 0:
            b["pending"] -= 1
            return Reply(200, {"data": [{"handle": b["handle"],
                                         "status": "started",
                                         "errors_total_count": 0,
                                         "errors": [], "warnings": []}]},
                         outcome="batch_started")
        self.apply_batch(b)
        return Reply(200, {"data": [{
            "handle": b["handle"], "status": "finished",
            "errors_total_count": len(b["errors"]),
            "errors": b["errors"], "warnings_total_count": 0,
            "warnings": [], "ids_of_invalid_requests":
                [e["id"] for e in b["errors"] if e["id"] is not None]}]},
            outcome="batch_finished")

    def products(self, params):
        wanted = None
        if "filter" in params:
            try:
                f = json.loads(params["filter"])
                cond = f["retailer_id"]
                if "eq" in cond:
                    wanted = {cond["eq"]}
                else:
                    wanted = set(cond["is_any"])
            except (ValueError, KeyError, TypeError):
                return self.error(400, 100, "(#100) filter must be "
                                  "{\"retailer_id\":{\"eq\"|\"is_any\":...}}",
                                  outcome="bad_filter")
        data = []
        for rid, n in sorted(self.quantities.items()):
            if wanted is None or rid in wanted:
                fb_id = 900000000000 + zlib.crc32(rid.encode())
                data.append({"id": str(fb_id),
                             "retailer_id": rid,
                             "quantity_to_sell_on_facebook": n})
        return Reply(200, {"data": data}, outcome="read")

    def platform_control(self, method, route, query, spec):
        if route == "/_expire_tokens" and method == "POST":
            # The configured token expires (code 190, subcode 463); a test
            # then installs a new one with /_config {"access_token": ...}.
            self.expired_tokens.add(self.config["access_token"])
            self.config["access_token"] = spec.get(
                "new_token", self.config["access_token"] + "-renewed")
            return 200, {"ok": True,
                         "access_token": self.config["access_token"]}
        if route == "/_sign_webhook" and method == "POST":
            body = spec_body(spec)
            sig = "sha256=" + hmac_sha256(
                spec.get("secret", self.config["app_secret"]), body
            ).hexdigest()
            return 200, to_deliver(spec.get("url"), {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sig}, body)
        return 404, {"error": "no such control endpoint"}


PLATFORMS = {"shopify": Shopify, "tiktok": TikTok, "amazon": Amazon,
             "meta": Meta}


# ---------------------------------------------------------------------------
# HTTP server (threaded, keep-alive)
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Mock Shopify / TikTok Shop / Amazon SP-API / Meta "
        "catalog servers for pg_ves tests.")
    ap.add_argument("--platforms", default="shopify,tiktok,amazon,meta",
                    help="comma-separated subset to serve (default: all)")
    ap.add_argument("--port", type=int, default=0,
                    help="first port; 0 (default) picks free ports; N gives "
                    "N, N+1, ... in --platforms order")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file",
                    help="once all listen, write 'name port' lines here "
                    "(atomically); with one platform, just the port")
    ap.add_argument("--config", default="{}",
                    help='JSON {"shopify": {...}, ...} overriding defaults')
    ap.add_argument("--log-dir",
                    help="append each platform's requests to "
                    "DIR/<name>.jsonl, one JSON line each")
    ap.add_argument("--max-records", type=int, default=0,
                    help="keep only the newest N records per platform "
                    "(0 = all)")
    ap.add_argument("--quiet", action="store_true",
                    help="print nothing on startup")
    ap.add_argument("--verbose", action="store_true",
                    help="log each request to stderr")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.platforms.split(",") if n.strip()]
    for n in names:
        if n not in PLATFORMS:
            ap.error("unknown platform %r (have %s)"
                     % (n, ", ".join(PLATFORMS)))
    config = json.loads(args.config)
    servers = []
    for i, n in enumerate(names):
        plat = PLATFORMS[n](config.get(n))
        plat.max_records = args.max_records
        if args.log_dir:
            plat.open_log(os.path.join(args.log_dir, n + ".jsonl"))
        srv = MockServer((args.host, args.port + i if args.port else 0), plat,
                         "%s mock" % n, SERVER_NAME, args.verbose)
        servers.append((n, srv))
    threads = [threading.Thread(target=s.serve_forever,
                                kwargs={"poll_interval": 0.2}, daemon=True)
               for _, s in servers]
    for t in threads:
        t.start()
    ports = [(n, s.server_address[1]) for n, s in servers]
    if args.port_file:
        if len(ports) == 1:
            write_atomic(args.port_file, "%d\n" % ports[0][1])
        else:
            write_atomic(args.port_file,
                         "".join("%s %d\n" % p for p in ports))
    if not args.quiet:
        sys.stderr.write("platform mocks listening on %s: %s\n" % (
            args.host, ", ".join("%s=%d" % p for p in ports)))
        sys.stderr.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.5):
        pass
    for _, s in servers:
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
