"""Self-test for the pg_ves mock VES sequencer (test/mock/sequencer.py).

Run with any of:
    python3 test/mock/test_sequencer.py
    cd test/mock && python3 -m unittest test_sequencer

First checks the mock's own VES v1 and RFC 8785 code against the published
vectors in test/vectors, then starts one mock process and talks to it the way
a client (the pg_ves sync worker) would.  Takes a few seconds.
"""

import http.client
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "sequencer.py")
VECTORS = os.path.join(HERE, "..", "vectors")
sys.path.insert(0, HERE)
import sequencer as S  # noqa: E402
from mockhttp import start_server  # noqa: E402

API_KEY = "ss_test_key"
TOKEN = "test-bearer-token"
SEQ_SEED = bytes(range(32))
SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SEED2 = bytes([7] * 32)
TENANT = "00000000-0000-0000-0000-000000000001"
STORE = "00000000-0000-0000-0000-000000000002"
STORE2 = "00000000-0000-0000-0000-000000000003"
AGENT = "11111111-1111-1111-1111-111111111111"
INGEST = "/api/v1/ves/events/ingest"
AUTH = {"Authorization": "ApiKey " + API_KEY}


# ---------------------------------------------------------------------------
# The mock's hashes against the published vectors
# ---------------------------------------------------------------------------

class Vectors(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(VECTORS, "ves_v1.json")) as f:
            self.v = json.load(f)

    def test_jcs_documents(self):
        names = sorted(os.listdir(os.path.join(VECTORS, "jcs", "input")))
        self.assertEqual(len(names), 6)
        for name in names:
            with open(os.path.join(VECTORS, "jcs", "input", name), "rb") as f:
                doc = S.parse_json_strict(f.read())
            with open(os.path.join(VECTORS, "jcs", "output", name),
                      "rb") as f:
                want = f.read()
            self.assertEqual(S.canonical_json(doc).encode("utf-8"), want,
                             name)

    def test_jcs_numbers(self):
        n = 0
        with open(os.path.join(VECTORS, "jcs", "numbers.txt")) as f:
            for line in f:
                bits, text = line.strip().split(",")
                x = struct.unpack(">d", bytes.fromhex(bits.zfill(16)))[0]
                self.assertEqual(S.es_number(x), text, bits)
                n += 1
        self.assertGreater(n, 1000)

    def test_jcs_refusals(self):
        for bad in ('{"a":1,"a":2}', '[1e400]', '[NaN]'):
            with self.assertRaises(S.CanonicalError, msg=bad):
                S.parse_json_strict(bad)
        with self.assertRaises(S.CanonicalError):
            S.canonical_json(["\ud800"])
        self.assertEqual(S.canonical_json(2 ** 53 + 1), "9007199254740992")
        self.assertEqual(S.canonical_json(-0.0), "0")

    def test_event_hashes_signatures_receipts(self):
        for e in self.v["events"]:
            ev = e["event"]
            self.assertEqual(S.canonical_json(ev["payload"]),
                             e["canonical_payload"])
            self.assertEqual(S.hex0x(S.payload_plain_hash(ev["payload"])),
                             ev["payload_plain_hash"])
            sh = S.signing_hash(ev)
            self.assertEqual(S.hex0x(sh), e["event_signing_hash"])
            seed = bytes.fromhex(e["signer_seed_hex"])
            pub = S.ed25519_public(seed)
            self.assertEqual(S.hex0x(pub), e["signer_public_key"])
            sig = S.unhex(ev["agent_signature"])
            self.assertEqual(S.ed25519_sign(seed, sh), sig)
            self.assertTrue(S.ed25519_verify(pub, sig, sh))
            self.assertFalse(S.ed25519_verify(pub, sig, bytes(32)))
            self.assertEqual(S.hex0x(S.receipt_hash(
                ev["tenant_id"], ev["store_id"], ev["event_id"],
                e["sequence_number"], sh)), e["receipt_hash"])
            self.assertEqual(S.hex0x(S.leaf_hash(
                ev["tenant_id"], ev["store_id"], e["sequence_number"], sh,
                sig)), e["leaf_hash"])

    def test_cross_platform_signing_hash(self):
        cp = self.v["cross_platform"]
        self.assertEqual(S.hex0x(S.signing_hash(cp["fields"])),
                         cp["event_signing_hash"])

    def test_merkle_root_and_proofs(self):
        leaves = [S.unhex(e["leaf_hash"]) for e in self.v["events"]]
        root = S.merkle_root(leaves)
        self.assertEqual(S.hex0x(root), self.v["batch"]["events_root"])
        self.assertEqual(S.hex0x(S.PAD_LEAF), self.v["batch"]["pad_leaf"])
        for i, e in enumerate(self.v["events"]):
            proof = S.merkle_proof(leaves, i)
            self.assertEqual([S.hex0x(p) for p in proof],
                             e["inclusion_proof"])
            self.assertTrue(S.verify_merkle_proof(leaves[i], proof, i, root))
            self.assertFalse(S.verify_merkle_proof(leaves[i], proof, i ^ 1,
                                                   root))


# ---------------------------------------------------------------------------
# The running mock
# ---------------------------------------------------------------------------

class Mock:
    proc = None
    port = None
    tmp = None


def setUpModule():
    Mock.tmp = tempfile.mkdtemp(prefix="pg_ves_sequencer_test_")
    port_file = os.path.join(Mock.tmp, "port")
    Mock.proc, port = start_server(
        [sys.executable, MOCK, "--port", "0", "--port-file", port_file,
         "--api-key", API_KEY, "--bearer-token", TOKEN,
         "--sequencer-seed", SEQ_SEED.hex(),
         "--log", os.path.join(Mock.tmp, "seq.jsonl"), "--quiet"],
        port_file, "sequencer mock")
    Mock.port = int(port)


def tearDownModule():
    Mock.proc.send_signal(signal.SIGTERM)
    try:
        rc = Mock.proc.wait(timeout=5)
    finally:
        if Mock.proc.poll() is None:
            Mock.proc.kill()
        shutil.rmtree(Mock.tmp, ignore_errors=True)
    if rc != 0:
        raise AssertionError("mock exited with %r on SIGTERM" % rc)


def make_event(entity_id="SKU-1", payload=None, seed=SEED, agent=AGENT,
               tenant=TENANT, store=STORE, **extra):
    env = {"ves_version": 1, "event_id": str(uuid.uuid4()),
           "tenant_id": tenant, "store_id": store,
           "source_agent_id": agent, "agent_key_id": 1,
           "entity_type": "InventoryItem", "entity_id": entity_id,
           "event_type": "inventory.adjusted",
           "created_at": "2026-11-30T07:00:00.000Z", "payload_kind": 0,
           "payload": payload if payload is not None else {"delta": 1}}
    env.update(extra)
    return S.sign_envelope(env, seed)


def resign(env, seed=SEED):
    env = dict(env)
    env.pop("agent_signature")
    return S.sign_envelope(env, seed)


class Base(unittest.TestCase):
    def setUp(self):
        self.ctl("POST", "/_reset", {})
        self.ctl("POST", "/_keys", {"tenant_id": TENANT, "agent_id": AGENT,
                                    "key_id": 1,
                                    "public_key": S.hex0x(
                                        S.ed25519_public(SEED))})

    def call(self, method, path, body=None, headers=None, raw=False):
        c = http.client.HTTPConnection("127.0.0.1", Mock.port, timeout=10)
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        if raw or not data:
            return r, data.decode()
        if r.getheader("Content-Type", "").startswith("text/plain"):
            return r, data.decode()
        return r, json.loads(data)

    def ctl(self, method, path, obj=None):
        r, data = self.call(method, path, obj)
        self.assertEqual(r.status, 200, data)
        return data

    def push(self, events, agent=AGENT, headers=AUTH, status=200):
        r, data = self.call("POST", INGEST, {"agentId": agent,
                                             "events": events}, headers)
        self.assertEqual(r.status, status, data)
        return data

    def read(self, tenant=TENANT, store=STORE, status=200, headers=AUTH,
             **q):
        q.update(tenant_id=tenant, store_id=store)
        r, data = self.call("GET", "/api/v1/events?" + urlencode(q),
                            headers=headers)
        self.assertEqual(r.status, status, data)
        return data

    def stats(self):
        return self.ctl("GET", "/_stats")

    def fault(self, **spec):
        self.ctl("POST", "/_faults", spec)

    def seqs(self, data):
        return [i["envelope"]["sequence_number"] for i in data["events"]]

    def assert_rejected(self, data, event, reason, message=None):
        rej = [r for r in data.get("rejections", [])
               if r["event_id"] == event["event_id"]]
        self.assertEqual(len(rej), 1, data)
        self.assertEqual(set(rej[0]), {"event_id", "reason", "message"})
        self.assertEqual(rej[0]["reason"], reason)
        if message is not None:
            self.assertEqual(rej[0]["message"], message)


class Ingest(Base):
    def test_sequences_and_signs_receipts(self):
        evs = [make_event("SKU-%d" % i) for i in range(3)]
        data = self.push(evs)
        self.assertEqual(set(data), {"batchId", "eventsAccepted",
                                     "eventsRejected", "sequenceStart",
                                     "sequenceEnd", "headSequence",
                                     "receipts"})
        self.assertEqual((data["eventsAccepted"], data["eventsRejected"],
                          data["sequenceStart"], data["sequenceEnd"],
                          data["headSequence"]), (3, 0, 1, 3, 3))
        info = self.ctl("GET", "/_sequencer")
        self.assertEqual(info["public_key"],
                         S.hex0x(S.ed25519_public(SEQ_SEED)))
        pub = S.unhex(info["public_key"])
        for n, (ev, rc) in enumerate(zip(evs, data["receipts"]), 1):
            self.assertEqual(rc["eventId"], ev["event_id"])
            self.assertEqual(rc["sequenceNumber"], n)
            self.assertEqual(rc["sequencerId"], info["sequencer_id"])
            self.assertEqual(rc["signatureAlg"], "ed25519")
            self.assertEqual(rc["receiptSignatureScheme"], 1)
            self.assertEqual(rc["sequencerKeyVersion"], 0)
            self.assertTrue(rc["sequencedAt"].endswith("+00:00"))
            want = S.receipt_hash(TENANT, STORE, ev["event_id"], n,
                                  S.signing_hash(ev))
            self.assertEqual(rc["receiptHash"], want.hex())
            self.assertTrue(S.ed25519_verify(
                pub, bytes.fromhex(rc["sequencerSignature"]), want))
        # Another stream starts at 1 of its own.
        data = self.push([make_event(store=STORE2)])
        self.assertEqual(data["sequenceStart"], 1)
        self.assertEqual(self.stats()["accepted"], 4)

    def test_accepts_the_published_vector_envelopes(self):
        with open(os.path.join(VECTORS, "ves_v1.json")) as f:
            vec = json.load(f)["events"]
        evs = [e["event"] for e in vec]
        data = self.push(evs)
        self.assertEqual((data["eventsAccepted"], data["sequenceEnd"]),
                         (3, 3))
        for e, rc in zip(vec, data["receipts"]):
            self.assertEqual(rc["receiptHash"], S.receipt_hash(
                TENANT, STORE, e["event"]["event_id"], rc["sequenceNumber"],
                S.unhex(e["event_signing_hash"])).hex())

    def test_unsigned_receipts(self):
        self.ctl("POST", "/_config", {"sign_receipts": False})
        rc = self.push([make_event()])["receipts"][0]
        self.assertEqual(rc["signatureAlg"], "none")
        self.assertEqual(rc["sequencerSignature"], "")
        self.assertNotIn("receiptSignatureScheme", rc)

    def test_identical_repush_returns_the_original_receipt(self):
        ev = make_event()
        first = self.push([ev])["receipts"][0]
        self.push([make_event("SKU-2")])
        data = self.push([ev])
        self.assertEqual(data["receipts"], [first])
        self.assertEqual((data["eventsAccepted"], data["eventsRejected"],
                          data["sequenceStart"], data["sequenceEnd"],
                          data["headSequence"]), (0, 0, None, None, 2))
        self.assertNotIn("rejections", data)
        self.assertEqual(self.stats()["replayed"], 1)

    def test_same_event_id_other_content_is_rejected(self):
        ev = make_event()
        self.push([ev])
        other = resign(dict(ev, payload={"delta": 2},
                            payload_plain_hash=S.hex0x(bytes(32))))
        data = self.push([other])
        self.assert_rejected(data, other, "duplicate_event_id",
                             "Event ID already exists with different "
                             "contents")
        self.assertEqual((data["eventsAccepted"], data["eventsRejected"],
                          data["headSequence"]), (0, 1, 1))
        self.assertNotIn("receipts", data)

    def test_duplicate_in_batch(self):
        ev = make_event()
        data = self.push([ev, ev])
        self.assertEqual(data["eventsAccepted"], 1)
        self.assert_rejected(data, ev, "duplicate_event_id",
                             "Event %s duplicated in batch" % ev["event_id"])

    def test_version_conflict(self):
        a = make_event("SKU-9", base_version=0)
        self.assertEqual(self.push([a])["eventsAccepted"], 1)
        b = make_event("SKU-9", base_version=0)
        data = self.push([b])
        self.assert_rejected(data, b, "version_conflict: expected 0, "
                             "actual 1", "Version conflict: expected 0, "
                             "actual 1")
        # Within one batch, an accepted event moves the version.
        c = make_event("SKU-9", base_version=1)
        d = make_event("SKU-9", base_version=2)
        e = make_event("SKU-9")  # no base_version: never checked
        data = self.push([c, d, e])
        self.assertEqual((data["eventsAccepted"], data["sequenceEnd"]),
                         (3, 4))

    def test_bad_payload_hash(self):
        ev = make_event()
        ev["payload"] = {"delta": 1000}
        data = self.push([ev])
        self.assert_rejected(data, ev, "invalid_payload_hash",
                             "Payload hash verification failed")
        self.assertEqual(data["headSequence"], 0)

    def test_bad_signature(self):
        ev = make_event()
        sig = bytearray(S.unhex(ev["agent_signature"]))
        sig[5] ^= 0x40
        ev["agent_signature"] = S.hex0x(bytes(sig))
        data = self.push([ev])
        self.assert_rejected(data, ev, "invalid_signature")
        # Signed by another key than the registered one.
        ev2 = make_event(seed=SEED2)
        self.assert_rejected(self.push([ev2]), ev2, "invalid_signature")

    def test_unknown_and_revoked_keys(self):
        ev = make_event(agent_key_id=2)
        self.assert_rejected(self.push([ev]), ev,
                             "agent_key_invalid: Agent key not found",
                             "Agent key not found")
        self.ctl("POST", "/_keys", {"tenant_id": TENANT, "agent_id": AGENT,
                                    "key_id": 1, "revoke": True})
        ev = make_event()
        self.assert_rejected(self.push([ev]), ev,
                             "agent_key_invalid: Agent key has been revoked")

    def test_partial_batch(self):
        good1, bad, good2 = make_event("A"), make_event("B"), make_event("C")
        bad["payload"] = {"forged": True}
        data = self.push([good1, bad, good2])
        self.assertEqual((data["eventsAccepted"], data["eventsRejected"],
                          data["sequenceStart"], data["sequenceEnd"]),
                         (2, 1, 1, 2))
        self.assertEqual([r["eventId"] for r in data["receipts"]],
                         [good1["event_id"], good2["event_id"]])
        self.assert_rejected(data, bad, "invalid_payload_hash")

    def test_schema_checks(self):
        ev = make_event()
        ev["payload_cipher_hash"] = S.hex0x(b"\x01" * 32)
        ev["agent_signature"] = S.hex0x(S.ed25519_sign(SEED,
                                                       S.signing_hash(ev)))
        self.assert_rejected(self.push([ev]), ev,
                             "schema_validation: payload_cipher_hash")
        ev = resign(dict(make_event(), created_at="yesterday"))
        self.assert_rejected(self.push([ev]), ev,
                             "schema_validation: created_at",
                             "created_at must be RFC3339")
        ev = make_event(ves_version=2)
        self.assert_rejected(self.push([ev]), ev, "unsupported_version",
                             "Expected VES version 1, got 2")
        self.ctl("POST", "/_config",
                 {"schema_reject_event_types": ["order.created"]})
        ev = make_event(event_type="order.created")
        data = self.push([ev, make_event()])
        self.assert_rejected(data, ev, "schema_validation",
                             "No schema registered for event type "
                             "'order.created'")
        self.assertEqual(data["eventsAccepted"], 1)
        self.assertEqual(self.stats()["rejections"]["schema_validation"], 3)

    def test_accepts_hashes_without_0x_and_extra_fields(self):
        ev = make_event()
        ev["payload_plain_hash"] = ev["payload_plain_hash"][2:]
        ev["agent_signature"] = ev["agent_signature"][2:].upper()
        ev["pg_ves_position"] = 42
        self.assertEqual(self.push([ev])["eventsAccepted"], 1)

    def test_whole_request_errors(self):
        r, data = self.call("POST", INGEST, {"agentId": AGENT, "events": []},
                            AUTH)
        self.assertEqual(r.status, 400)
        self.assertEqual(data, {"error": {"code": "INVALID_FIELD_VALUE",
                                          "numeric_code": 3003,
                                          "message":
                                          "events must not be empty"}})
        self.assertEqual(r.getheader("x-error-code"), "INVALID_FIELD_VALUE")
        data = self.push([make_event(), make_event(store=STORE2)],
                         status=400)
        self.assertEqual(data["error"]["message"], "All events in a batch "
                         "must share the same tenantId and storeId")
        data = self.push([make_event()],
                         agent="22222222-2222-2222-2222-222222222222",
                         status=400)
        self.assertEqual(data["error"]["message"], "event source_agent_id "
                         "must match request agent_id")
        ev = make_event()
        del ev["agent_signature"]
        data = self.push([ev], status=422)
        self.assertIn("events[0]: missing field `agent_signature`", data)
        r, data = self.call("POST", INGEST, {"events": []}, AUTH)
        self.assertEqual(r.status, 422)
        self.assertIn("missing field `agentId`", data)
        r, data = self.call("POST", INGEST, b"{not json",
                            dict(AUTH, **{"Content-Type":
                                          "application/json"}))
        self.assertEqual(r.status, 400)
        self.assertTrue(data.startswith("Failed to parse the request body "
                                        "as JSON"))
        r, data = self.call("POST", INGEST, b"{}", AUTH)
        self.assertEqual(r.status, 415)
        data = self.push([make_event(entity_id="")], status=400)
        self.assertIn("entity_id must be between 1 and 512", data["error"]
                      ["message"])
        data = self.push([make_event() for _ in range(1001)], status=413)
        self.assertEqual(data["error"]["code"], "PAYLOAD_TOO_LARGE")
        self.assertEqual(self.stats()["accepted"], 0)

    def test_register_key_through_the_api(self):
        agent2 = "33333333-3333-3333-3333-333333333333"
        r, data = self.call("POST", "/api/v1/agents/keys", {
            "tenantId": TENANT, "agentId": agent2, "keyId": 1,
            "publicKey": S.ed25519_public(SEED2).hex()}, AUTH)
        self.assertEqual(r.status, 200, data)
        self.assertEqual(data["message"], "Agent key registered successfully")
        self.assertEqual(self.push([make_event(seed=SEED2, agent=agent2)],
                                   agent=agent2)["eventsAccepted"], 1)

    def test_signing_helper(self):
        env = {"event_id": str(uuid.uuid4()), "tenant_id": TENANT,
               "store_id": STORE, "source_agent_id": AGENT,
               "entity_type": "Order", "entity_id": "ORD-7",
               "event_type": "order.created", "payload": {"total": "1.00"}}
        signed = self.ctl("POST", "/_sign", {"envelope": env,
                                             "seed": SEED.hex()})["envelope"]
        self.assertEqual(self.push([signed])["eventsAccepted"], 1)


class Auth(Base):
    def test_credentials(self):
        ev = make_event()
        r, data = self.call("POST", INGEST, {"agentId": AGENT,
                                             "events": [ev]})
        self.assertEqual(r.status, 401)
        self.assertEqual(data, {"error": "Missing authentication",
                                "code": "missing_auth"})
        for h, code in (("ApiKey ss_wrong", "invalid_api_key"),
                        ("ApiKey test_key", "invalid_api_key"),
                        ("Bearer nope", "invalid_jwt"),
                        ("Basic abc", "missing_auth")):
            data = self.push([ev], headers={"Authorization": h}, status=401)
            self.assertEqual(data["code"], code, h)
        self.assertEqual(self.stats()["auth_failures"], 5)
        self.assertEqual(self.stats()["accepted"], 0)
        self.push([ev], headers={"Authorization": "Bearer " + TOKEN})
        self.push([make_event()], headers={"X-API-Key": API_KEY})
        self.push([make_event()], headers={"Authorization": API_KEY})
        self.read(headers={"Authorization": "Bearer " + TOKEN})
        self.read(headers={}, status=401)

    def test_scoped_credentials(self):
        self.ctl("POST", "/_config", {"api_keys": [
            API_KEY,
            {"key": "ss_store2", "tenant_id": TENANT, "store_ids": [STORE2]},
            {"key": "ss_reader", "read_only": True}]})
        data = self.push([make_event()],
                         headers={"Authorization": "ApiKey ss_store2"},
                         status=403)
        self.assertEqual(data["error"], {"code": "INSUFFICIENT_PERMISSIONS",
                                         "numeric_code": 1005,
                                         "message": "Store access denied"})
        self.push([make_event(store=STORE2)],
                  headers={"Authorization": "ApiKey ss_store2"})
        data = self.push([make_event()],
                         headers={"Authorization": "ApiKey ss_reader"},
                         status=403)
        self.assertEqual(data["error"]["message"],
                         "Write permission required")
        self.read(headers={"Authorization": "ApiKey ss_reader"})
        r, _ = self.call("POST", "/_config", {"api_keys": ["no_prefix"]})
        self.assertEqual(r.status, 400)

    def test_rate_limit(self):
        self.ctl("POST", "/_config", {"rate_limit_per_minute": 2})
        self.push([make_event()])
        self.push([make_event()])
        r, data = self.call("POST", INGEST, {"agentId": AGENT,
                                             "events": [make_event()]}, AUTH)
        self.assertEqual(r.status, 429)
        self.assertEqual(data, {"error": "Rate limit exceeded",
                                "code": "rate_limited"})
        self.assertEqual(r.getheader("Retry-After"), "60")
        self.assertEqual(self.stats()["throttled"], 1)
        self.ctl("POST", "/_config", {"rate_limit_per_minute": None,
                                      "retry_after": 1})
        self.push([make_event()])
        self.fault(kind="throttle")
        r, _ = self.call("GET", "/api/v1/head?" + urlencode(
            {"tenant_id": TENANT, "store_id": STORE}), headers=AUTH)
        self.assertEqual((r.status, r.getheader("Retry-After")), (429, "1"))
        self.fault(kind="throttle", retry_after=0)
        r, _ = self.call("GET", "/api/v1/head?" + urlencode(
            {"tenant_id": TENANT, "store_id": STORE}), headers=AUTH)
        self.assertEqual((r.status, r.getheader("Retry-After")), (429, "0"))


class Read(Base):
    def verify_item(self, item):
        """What a puller checks, with the mock's own functions."""
        env = item["envelope"]
        ok = S.hex0x(S.payload_plain_hash(env["payload"])) == \
            env["payload_plain_hash"]
        sh = S.signing_hash(env)
        ok = ok and S.ed25519_verify(S.ed25519_public(SEED),
                                     S.unhex(env["agent_signature"]), sh)
        rh = S.receipt_hash(env["tenant_id"], env["store_id"],
                            env["event_id"], env["sequence_number"], sh)
        ok = ok and item["receipt"]["receiptHash"] == rh.hex()
        ok = ok and S.ed25519_verify(
            S.ed25519_public(SEQ_SEED),
            bytes.fromhex(item["receipt"]["sequencerSignature"]), rh)
        return ok

    def push_n(self, n, store=STORE):
        evs = [make_event("SKU-%d" % i, {"delta": i}, store=store)
               for i in range(n)]
        self.assertEqual(self.push(evs)["eventsAccepted"], n)
        return evs

    def test_reads_full_signed_envelopes(self):
        evs = self.push_n(5)
        data = self.read(**{"from": 2, "limit": 2})
        self.assertEqual(set(data), {"events", "count"})
        self.assertEqual(data["count"], 2)
        self.assertEqual(self.seqs(data), [2, 3])
        item = data["events"][0]
        self.assertEqual(set(item), {"envelope", "sequenced_at", "receipt"})
        env = item["envelope"]
        for k, v in evs[1].items():
            self.assertEqual(env[k], v, k)
        self.assertEqual(env["agent_signature_scheme"], 0)
        self.assertTrue(env["sequenced_at"].endswith("Z"))
        self.assertEqual(item["receipt"]["sequenceNumber"], 2)
        self.assertTrue(all(self.verify_item(i) for i in data["events"]))
        self.assertEqual(self.seqs(self.read(**{"from": 0})), [1, 2, 3, 4, 5])
        self.assertEqual(self.seqs(self.read()), [1, 2, 3, 4, 5])
        self.assertEqual(self.seqs(self.read(**{"from": 5})), [5])
        self.assertEqual(self.read(**{"from": 6})["events"], [])
        self.assertEqual(self.read(store=STORE2)["events"], [])
        self.ctl("POST", "/_config", {"read_receipts": False})
        self.assertNotIn("receipt", self.read()["events"][0])
        # As StateSet's server: its HTTP read never serves VES events.
        self.ctl("POST", "/_config", {"serve_ves_reads": False})
        self.assertEqual(self.read(), {"events": [], "count": 0})

    def test_limit(self):
        self.push_n(3)
        self.assertEqual(self.read(limit=5000)["count"], 3)
        data = self.read(limit=0, status=400)
        self.assertEqual(data, "limit must be greater than 0")
        r, data = self.call("GET", "/api/v1/events?store_id=" + STORE,
                            headers=AUTH)
        self.assertEqual(r.status, 400)
        self.assertIn("missing field `tenant_id`", data)
        self.push([make_event("X-%d" % i) for i in range(1000)])
        data = self.read(limit=5000)
        self.assertEqual(data["count"], 1000)
        self.assertEqual(self.seqs(data)[-1], 1000)
        self.assertEqual(self.seqs(self.read(**{"from": 1001})), [1001, 1002,
                                                                  1003])

    def test_head(self):
        self.push_n(2)
        r, data = self.call("GET", "/api/v1/head?" + urlencode(
            {"tenant_id": TENANT, "store_id": STORE}), headers=AUTH)
        self.assertEqual((r.status, data), (200, {"head_sequence": 2}))


class Faults(Read):
    def test_skip(self):
        self.push_n(1)
        self.fault(kind="skip")
        data = self.push([make_event("B"), make_event("C")])
        self.assertEqual((data["sequenceStart"], data["sequenceEnd"],
                          data["headSequence"]), (3, 4, 4))
        self.assertEqual(self.seqs(self.read()), [1, 3, 4])
        self.assertEqual(self.stats()["injected"], 1)

    def test_skip_a_given_number(self):
        self.fault(kind="skip", seq=3)
        self.push_n(4)
        self.assertEqual(self.seqs(self.read()), [1, 2, 4, 5])

    def test_repeat(self):
        self.push_n(2)
        self.fault(kind="repeat")
        self.push([make_event("R")])
        self.push([make_event("S")])
        self.assertEqual(self.seqs(self.read()), [1, 2, 2, 3])

    def test_gap_on_reads_heals(self):
        self.push_n(4)
        self.fault(kind="gap", seq=2)
        self.assertEqual(self.seqs(self.read()), [1, 3, 4])
        self.assertEqual(self.seqs(self.read(**{"from": 2})), [2, 3, 4])
        self.fault(kind="gap", times=2)
        self.assertEqual(self.seqs(self.read(**{"from": 3})), [4])
        self.assertEqual(self.seqs(self.read(**{"from": 3})), [4])
        self.assertEqual(self.seqs(self.read(**{"from": 3})), [3, 4])

    def test_duplicate_on_reads(self):
        self.push_n(3)
        self.fault(kind="duplicate", seq=2)
        data = self.read()
        self.assertEqual(self.seqs(data), [1, 2, 2, 3])
        self.assertEqual(data["count"], 4)

    def test_forged_events(self):
        self.push_n(3)
        for how in ("payload", "rehash", "signature", "receipt"):
            self.fault(kind="forge", seq=2, how=how)
            data = self.read()
            ok = [self.verify_item(i) for i in data["events"]]
            self.assertEqual(ok, [True, False, True], how)
            env = data["events"][1]["envelope"]
            hash_ok = S.hex0x(S.payload_plain_hash(env["payload"])) == \
                env["payload_plain_hash"]
            self.assertEqual(hash_ok, how != "payload", how)
            # Once served, the fault is gone (times defaults to 1).
            self.assertTrue(all(self.verify_item(i)
                                for i in self.read()["events"]))
        self.assertEqual(self.stats()["forged_served"], 4)
        # The stored event itself is untouched.
        stored = self.ctl("GET", "/_events?" + urlencode(
            {"tenant_id": TENANT, "store_id": STORE}))
        self.assertTrue(all(self.verify_item(i) for i in stored["events"]))

    def test_throttle(self):
        self.fault(kind="throttle", times=2, path=INGEST)
        for _ in range(2):
            r, data = self.call("POST", INGEST, {"agentId": AGENT,
                                                 "events": [make_event()]},
                                AUTH)
            self.assertEqual(r.status, 429)
            self.assertEqual(data["code"], "rate_limited")
            self.assertEqual(r.getheader("Retry-After"), "60")
        self.read()  # another path: not throttled
        self.assertEqual(self.push([make_event()])["sequenceStart"], 1)

    def test_server_errors(self):
        self.fault(kind="5xx")
        data = self.push([make_event()], status=503)
        self.assertEqual(data, {"error": "Service temporarily unavailable",
                                "code": "pool_exhausted"})
        self.fault(kind="5xx", status=500)
        data = self.push([make_event()], status=500)
        self.assertEqual(data["error"]["code"], "INTERNAL_ERROR")
        self.assertEqual(self.stats()["accepted"], 0)
        self.push([make_event()])

    def test_reset_and_delay(self):
        self.fault(kind="reset")
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.call("POST", INGEST, {"agentId": AGENT,
                                       "events": [make_event()]}, AUTH)
        self.fault(kind="delay", delay_ms=300)
        t = time.monotonic()
        self.push([make_event()])
        self.assertGreaterEqual(time.monotonic() - t, 0.3)
        faults = self.ctl("GET", "/_faults")["faults"]
        self.assertEqual(faults, [])
        self.fault(kind="gap", times=None)
        self.assertEqual(self.ctl("GET", "/_faults")["faults"],
                         [{"kind": "gap", "times": None}])
        self.ctl("POST", "/_faults", {"clear": True})
        self.assertEqual(self.ctl("GET", "/_faults")["faults"], [])
        r, _ = self.call("POST", "/_faults", {"kind": "bogus"})
        self.assertEqual(r.status, 400)

    def test_request_log(self):
        self.push([make_event()])
        self.read()
        log = self.ctl("GET", "/_log")
        outcomes = [r["outcome"] for r in log["requests"]]
        self.assertEqual(outcomes, ["ingest:accepted=1,replayed=0,"
                                    "rejected=0", "read:1"])
        self.assertEqual(log["requests"][0]["headers"]["authorization"],
                         "ApiKey " + API_KEY)
        with open(os.path.join(Mock.tmp, "seq.jsonl")) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual(lines[-1]["outcome"], "read:1")


if __name__ == "__main__":
    unittest.main()
