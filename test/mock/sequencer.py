#!/usr/bin/env python3
"""Mock VES v1 sequencer for pg_ves tests, compatible with the HTTP API of
StateSet's sequencer (stateset-sequencer).

It verifies every pushed envelope with its own implementation of the VES v1
hashes (RFC 8785 canonical JSON, payload hash, signing hash, receipt hash) on
a general-purpose crypto library (python3-cryptography for Ed25519; SHA-256
from hashlib), never with pg_ves code.  It assigns gapless sequence numbers
per (tenant, store), answers ingest the way StateSet's server does (receipts,
rejections with the server's reason strings, 401/403/413/422/429 shapes) and
serves the sequenced envelopes back.  A control API under /_ registers agent
keys, changes the configuration, injects faults (skip or repeat a sequence
number, hide or duplicate one on reads, serve a forged event, throttle, 5xx,
reset, delay) and reads the request log.

    python3 test/mock/sequencer.py --port 0 --port-file DIR/seq.port --quiet

See test/mock/README.md ("Mock VES sequencer") for the routes and controls,
and for the server behaviour this mock follows.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import signal
import struct
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey, Ed25519PublicKey)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mockhttp import (ControlError, MockServer,  # noqa: E402
                      RequestLog, parse_fault_spec, write_atomic)

SERVER_NAME = "pg_ves-sequencer-mock"

# ---------------------------------------------------------------------------
# RFC 8785 (JSON Canonicalization Scheme)
# ---------------------------------------------------------------------------


class CanonicalError(ValueError):
    pass


def _no_constant(name):
    raise CanonicalError("%s is not JSON" % name)


def _float(text):
    x = float(text)
    if x != x or x in (float("inf"), float("-inf")):
        raise CanonicalError("number out of range: %s" % text)
    return x


def _pairs_unique(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise CanonicalError("duplicate key %r" % k)
        out[k] = v
    return out


def parse_json_strict(text):
    """Parses JSON refusing duplicate keys, NaN/Infinity and numbers that
    are not IEEE doubles (1e400)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, object_pairs_hook=_pairs_unique,
                      parse_float=_float, parse_constant=_no_constant)


def es_number(x):
    """ECMAScript Number.prototype.toString of a double (RFC 8785 3.2.2.3)."""
    if isinstance(x, int):
        try:
            x = float(x)
        except OverflowError:
            raise CanonicalError("integer out of double range")
    if x != x or x in (float("inf"), float("-inf")):
        raise CanonicalError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + es_number(-x)
    # repr() gives the shortest digit string that round-trips, as ES does.
    mant, _, exp = repr(x).partition("e")
    whole, _, frac = mant.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    s = stripped.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        return s + "0" * (n - k)
    if 0 < n <= 21:
        return s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + s
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = s if k == 1 else s[0] + "." + s[1:]
    return "%se%s%d" % (head, sign, abs(e))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t",
            "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(s):
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise CanonicalError("lone surrogate in string")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical_json(value):
    """The RFC 8785 canonical form of a parsed JSON value, as text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return es_number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        except UnicodeEncodeError:
            raise CanonicalError("lone surrogate in key")
        return "{" + ",".join(_string(k) + ":" + canonical_json(value[k])
                              for k in keys) + "}"
    raise CanonicalError("not a JSON value: %r" % type(value))


# ---------------------------------------------------------------------------
# VES v1 hashes (stateset-sequencer docs/VES_SPEC.md sections 5, 6, 10, 11)
# ---------------------------------------------------------------------------

D_PAYLOAD_PLAIN = b"VES_PAYLOAD_PLAIN_V1"
D_EVENTSIG = b"VES_EVENTSIG_V1"
D_RECEIPT = b"VES_RECEIPT_V1"
D_LEAF = b"VES_LEAF_V1"
D_PAD_LEAF = b"VES_PAD_LEAF_V1"
D_NODE = b"VES_NODE_V1"
D_STREAM = b"VES_STREAM_V1"
ZERO32 = bytes(32)


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def enc_str(s):
    b = s.encode("utf-8")
    return u32(len(b)) + b


def uuid16(u):
    return (u if isinstance(u, uuid.UUID) else uuid.UUID(u)).bytes


def unhex(s, nbytes=None):
    """0x-prefixed (or bare) hex to bytes."""
    if isinstance(s, bytes):
        return s
    t = s[2:] if s.startswith("0x") else s
    b = bytes.fromhex(t)
    if nbytes is not None and len(b) != nbytes:
        raise ValueError("expected %d bytes, got %d" % (nbytes, len(b)))
    return b


def hex0x(b):
    return "0x" + b.hex()


def payload_plain_hash(payload):
    """SHA256(b"VES_PAYLOAD_PLAIN_V1" || JCS(payload))."""
    return sha256(D_PAYLOAD_PLAIN, canonical_json(payload).encode("utf-8"))


def signing_hash(ev):
    """The event signing hash of an envelope given as a dict of its VES
    fields (uuids as strings or UUIDs, hashes as hex or bytes)."""
    return sha256(
        D_EVENTSIG, u32(ev["ves_version"]),
        uuid16(ev["tenant_id"]), uuid16(ev["store_id"]),
        uuid16(ev["event_id"]), uuid16(ev["source_agent_id"]),
        u32(ev["agent_key_id"]),
        enc_str(ev["entity_type"]), enc_str(ev["entity_id"]),
        enc_str(ev["event_type"]), enc_str(ev["created_at"]),
        u32(ev["payload_kind"]),
        unhex(ev["payload_plain_hash"], 32),
        unhex(ev["payload_cipher_hash"], 32))


def receipt_hash(tenant_id, store_id, event_id, sequence_number, sig_hash):
    return sha256(D_RECEIPT, uuid16(tenant_id), uuid16(store_id),
                  uuid16(event_id), u64(sequence_number), sig_hash)


def leaf_hash(tenant_id, store_id, sequence_number, sig_hash, signature):
    return sha256(D_LEAF, uuid16(tenant_id), uuid16(store_id),
                  u64(sequence_number), sig_hash, signature)


PAD_LEAF = sha256(D_PAD_LEAF)


def node_hash(left, right):
    return sha256(D_NODE, left, right)


def stream_id(tenant_id, store_id):
    return sha256(D_STREAM, uuid16(tenant_id), uuid16(store_id))


def _padded(leaves):
    n = 1
    while n < len(leaves):
        n *= 2
    return list(leaves) + [PAD_LEAF] * (n - len(leaves))


def merkle_root(leaves):
    level = _padded(leaves)
    if not level:
        raise ValueError("no leaves")
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1])
                 for i in range(0, len(level), 2)]
    return level[0]


def merkle_proof(leaves, index):
    level = _padded(leaves)
    proof = []
    while len(level) > 1:
        proof.append(level[index ^ 1])
        level = [node_hash(level[i], level[i + 1])
                 for i in range(0, len(level), 2)]
        index //= 2
    return proof


def verify_merkle_proof(leaf, proof, index, root):
    h = leaf
    for sib in proof:
        h = node_hash(h, sib) if index % 2 == 0 else node_hash(sib, h)
        index //= 2
    return h == root


def ed25519_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key() \
        .public_bytes(serialization.Encoding.Raw,
                      serialization.PublicFormat.Raw)


def ed25519_sign(seed, message):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def ed25519_verify(public_key, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature,
                                                              message)
        return True
    except (InvalidSignature, ValueError):
        return False


def sign_envelope(env, seed):
    """Completes a plaintext envelope (dict): payload_plain_hash,
    payload_cipher_hash (zero) and agent_signature with the given seed."""
    env = dict(env)
    env.setdefault("ves_version", 1)
    env.setdefault("payload_kind", 0)
    env.setdefault("agent_key_id", 1)
    env.setdefault("event_id", str(uuid.uuid4()))
    env.setdefault("created_at", utc_ms())
    env["payload_plain_hash"] = hex0x(payload_plain_hash(env["payload"]))
    env["payload_cipher_hash"] = hex0x(ZERO32)
    env["agent_signature"] = hex0x(ed25519_sign(seed, signing_hash(env)))
    return env


# ---------------------------------------------------------------------------
# Time formats
# ---------------------------------------------------------------------------

def utc_ms(t=None):
    d = datetime.datetime.fromtimestamp(time.time() if t is None else t,
                                        datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond //
                                                         1000)


def utc_us(t, z):
    """RFC 3339 with microseconds: 'Z' as the server's JSON serialisation
    of a stored timestamp writes it, '+00:00' as its to_rfc3339() does."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if z else "+00:00")


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
                     r"(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$")


def is_rfc3339(s):
    m = RFC3339.match(s)
    if not m:
        return False
    try:
        datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                          int(m.group(4)), int(m.group(5)),
                          min(int(m.group(6)), 59))
    except ValueError:
        return False
    if int(m.group(6)) > 60:
        return False
    if m.group(9) and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


# ---------------------------------------------------------------------------
# Request parsing the way the server's JSON extractor does
# ---------------------------------------------------------------------------

class Reply:
    """An answer: status, JSON-able object or text, extra headers."""

    __slots__ = ("status", "obj", "text", "headers", "outcome", "reset",
                 "delay")

    def __init__(self, status=200, obj=None, text=None, headers=(),
                 outcome="ok", reset=False):
        self.status = status
        self.obj = obj
        self.text = text
        self.headers = list(headers)
        self.outcome = outcome
        self.reset = reset
        self.delay = 0

    def content_type(self):
        if self.text is not None:
            return "text/plain; charset=utf-8"
        return "application/json"

    def body(self):
        if self.text is not None:
            return self.text.encode()
        if self.obj is None:
            return b""
        return json.dumps(self.obj, separators=(",", ":"),
                          ensure_ascii=False).encode()


class Refusal(Exception):
    def __init__(self, reply):
        super().__init__(reply.outcome)
        self.reply = reply


API_CODES = {400: ("INVALID_FIELD_VALUE", 3003),
             401: ("AUTH_REQUIRED", 1001),
             403: ("INSUFFICIENT_PERMISSIONS", 1005),
             404: ("RESOURCE_NOT_FOUND", 4001),
             409: ("ALREADY_EXISTS", 5004),
             413: ("PAYLOAD_TOO_LARGE", 3004),
             429: ("RATE_LIMIT_EXCEEDED", 2001),
             500: ("INTERNAL_ERROR", 8999),
             503: ("SERVICE_UNAVAILABLE", 8002)}


def api_error(status, message, outcome):
    """The server's structured error (ApiError), used by the ingest
    handler: {"error": {"code", "numeric_code", "message"}} and an
    x-error-code header."""
    code, num = API_CODES.get(status, API_CODES[500 if status >= 500
                                                 else 400])
    return Reply(status, {"error": {"code": code, "numeric_code": num,
                                    "message": message}},
                 headers=[("x-error-code", code)], outcome=outcome)


def text_error(status, message, outcome):
    """A plain-text error, as the server's other handlers and its JSON and
    query extractors send them."""
    return Reply(status, text=message, outcome=outcome)


def unprocessable(path, detail):
    where = "%s: " % path if path else ""
    return Refusal(text_error(
        422, "Failed to deserialize the JSON body into the target type: "
        "%s%s" % (where, detail), "invalid_body"))


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean `%s`" % ("true" if v else "false")
    if isinstance(v, int):
        return "integer `%d`" % v
    if isinstance(v, float):
        return "floating point `%s`" % es_number(v)
    if isinstance(v, str):
        return "string %s" % json.dumps(v)
    if isinstance(v, list):
        return "sequence"
    return "map"


def _get_uuid(obj, name, path, required=True):
    if name not in obj or obj[name] is None:
        if required:
            raise unprocessable(path, "missing field `%s`" % name)
        return None
    v = obj[name]
    if not isinstance(v, str):
        raise unprocessable(path + "." + name if path else name,
                            "invalid type: %s, expected UUID" % _type_name(v))
    try:
        return uuid.UUID(v)
    except ValueError:
        raise unprocessable(path + "." + name if path else name,
                            "UUID parsing failed: invalid character")


def _get_uint(obj, name, path, bits, required=True):
    if name not in obj or obj[name] is None:
        if required:
            raise unprocessable(path, "missing field `%s`" % name)
        return None
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or \
            v >= 1 << bits:
        raise unprocessable("%s.%s" % (path, name),
                            "invalid value: %s, expected u%d"
                            % (_type_name(v), bits))
    return v


def _get_str(obj, name, path):
    if name not in obj:
        raise unprocessable(path, "missing field `%s`" % name)
    v = obj[name]
    if not isinstance(v, str):
        raise unprocessable("%s.%s" % (path, name),
                            "invalid type: %s, expected a string"
                            % _type_name(v))
    return v


def _get_hex(obj, name, path, nbytes):
    v = _get_str(obj, name, path)
    t = v[2:] if v.startswith("0x") else v
    try:
        b = bytes.fromhex(t)
        if len(t) % 2 or " " in t:
            raise ValueError
    except ValueError:
        raise unprocessable("%s.%s" % (path, name), "Invalid character")
    if len(b) != nbytes:
        raise unprocessable("%s.%s" % (path, name),
                            "expected %d bytes" % nbytes)
    return b


class Envelope:
    """A pushed VES v1 envelope, parsed as the server's serde types do:
    unknown fields are ignored, hashes accept hex with or without 0x."""

    def __init__(self, obj, path):
        if not isinstance(obj, dict):
            raise unprocessable(path, "invalid type: %s, expected struct "
                                "VesEventEnvelope" % _type_name(obj))
        self.ves_version = _get_uint(obj, "ves_version", path, 32)
        self.event_id = _get_uuid(obj, "event_id", path)
        self.tenant_id = _get_uuid(obj, "tenant_id", path)
        self.store_id = _get_uuid(obj, "store_id", path)
        self.source_agent_id = _get_uuid(obj, "source_agent_id", path)
        self.agent_key_id = _get_uint(obj, "agent_key_id", path, 32)
        self.entity_type = _get_str(obj, "entity_type", path)
        self.entity_id = _get_str(obj, "entity_id", path)
        self.event_type = _get_str(obj, "event_type", path)
        self.created_at = _get_str(obj, "created_at", path)
        kind = _get_uint(obj, "payload_kind", path, 32)
        if kind not in (0, 1):
            raise unprocessable(path + ".payload_kind",
                                "invalid value: %d, expected one of: 0, 1"
                                % kind)
        self.payload_kind = kind
        # serde reads JSON null as an absent Option.
        self.payload = obj.get("payload")
        self.payload_encrypted = obj.get("payload_encrypted")
        self.plain_hash = _get_hex(obj, "payload_plain_hash", path, 32)
        self.cipher_hash = _get_hex(obj, "payload_cipher_hash", path, 32)
        self.signature = _get_hex(obj, "agent_signature", path, 64)
        s = obj.get("agent_signature_scheme")
        if s is not None and (isinstance(s, bool) or not isinstance(s, int)):
            raise unprocessable(path + ".agent_signature_scheme",
                                "invalid type: %s, expected i32"
                                % _type_name(s))
        self.scheme = s
        self.command_id = _get_uuid(obj, "command_id", path, required=False)
        self.base_version = _get_uint(obj, "base_version", path, 64,
                                      required=False)
        _get_uint(obj, "sequence_number", path, 64, required=False)

    def fields(self):
        return {"ves_version": self.ves_version, "tenant_id": self.tenant_id,
                "store_id": self.store_id, "event_id": self.event_id,
                "source_agent_id": self.source_agent_id,
                "agent_key_id": self.agent_key_id,
                "entity_type": self.entity_type, "entity_id": self.entity_id,
                "event_type": self.event_type, "created_at": self.created_at,
                "payload_kind": self.payload_kind,
                "payload_plain_hash": self.plain_hash,
                "payload_cipher_hash": self.cipher_hash}

    def signing_hash(self):
        return signing_hash(self.fields())

    def same_content(self, other):
        """The server's exact-replay test: every signed field, the payload,
        the hashes, the signature, command_id and base_version."""
        def payload_key(p):
            try:
                return canonical_json(p) if p is not None else None
            except CanonicalError:
                return json.dumps(p, sort_keys=True)
        return (self.fields() == other.fields() and
                payload_key(self.payload) == payload_key(other.payload) and
                self.payload_encrypted == other.payload_encrypted and
                self.signature == other.signature and
                self.command_id == other.command_id and
                self.base_version == other.base_version)

    def served(self, seq, sequenced_at):
        """The envelope as the server serialises a stored event."""
        out = {"ves_version": self.ves_version,
               "event_id": str(self.event_id),
               "tenant_id": str(self.tenant_id),
               "store_id": str(self.store_id),
               "source_agent_id": str(self.source_agent_id),
               "agent_key_id": self.agent_key_id,
               "entity_type": self.entity_type,
               "entity_id": self.entity_id,
               "event_type": self.event_type,
               "created_at": self.created_at,
               "payload_kind": self.payload_kind}
        if self.payload is not None:
            out["payload"] = self.payload
        if self.payload_encrypted is not None:
            out["payload_encrypted"] = self.payload_encrypted
        out["payload_plain_hash"] = hex0x(self.plain_hash)
        out["payload_cipher_hash"] = hex0x(self.cipher_hash)
        out["agent_signature"] = hex0x(self.signature)
        out["agent_signature_scheme"] = self.scheme or 0
        out["sequence_number"] = seq
        out["sequenced_at"] = utc_us(sequenced_at, z=True)
        if self.command_id is not None:
            out["command_id"] = str(self.command_id)
        if self.base_version is not None:
            out["base_version"] = self.base_version
        return out


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------

FAULT_KINDS = ("skip", "repeat", "gap", "duplicate", "forge", "throttle",
               "5xx", "reset", "delay")
REQUEST_FAULTS = ("throttle", "5xx", "reset", "delay")
FORGE_HOW = ("payload", "rehash", "signature", "receipt")


class Fault:
    def __init__(self, spec):
        self.kind, self.times, self.path, self.status = parse_fault_spec(
            spec, FAULT_KINDS)
        self.seq = spec.get("seq")
        if self.seq is not None:
            self.seq = int(self.seq)
        self.tenant_id = uuid.UUID(spec["tenant_id"]) \
            if spec.get("tenant_id") else None
        self.store_id = uuid.UUID(spec["store_id"]) \
            if spec.get("store_id") else None
        self.delay_ms = int(spec.get("delay_ms", 1000))
        self.retry_after = spec.get("retry_after")
        self.how = spec.get("how", "payload")
        if self.kind == "forge" and self.how not in FORGE_HOW:
            raise ControlError("how must be one of %s" % (FORGE_HOW,))

    def describe(self):
        d = {"kind": self.kind, "times": self.times}
        for k in ("path", "seq", "tenant_id", "store_id"):
            v = getattr(self, k)
            if v is not None:
                d[k] = str(v) if isinstance(v, uuid.UUID) else v
        if self.kind == "5xx":
            d["status"] = self.status
        if self.kind == "delay":
            d["delay_ms"] = self.delay_ms
        if self.retry_after is not None:
            d["retry_after"] = self.retry_after
        if self.kind == "forge":
            d["how"] = self.how
        return d

    def stream_matches(self, tenant_id, store_id):
        return ((self.tenant_id is None or self.tenant_id == tenant_id) and
                (self.store_id is None or self.store_id == store_id))


# ---------------------------------------------------------------------------
# The sequencer
# ---------------------------------------------------------------------------

MAX_EVENTS_PER_BATCH = 1000
MAX_EVENT_PAYLOAD_SIZE = 1024 * 1024
MAX_BODY_SIZE = 10 * 1024 * 1024
API_KEY_PREFIX = "ss_"

AUTH_ERRORS = {
    "missing_auth": (401, "Missing authentication"),
    "invalid_api_key": (401, "Invalid API key"),
    "invalid_jwt": (401, "Invalid JWT"),
    "rate_limited": (429, "Rate limit exceeded"),
}


def auth_error(code, retry_after=60):
    status, message = AUTH_ERRORS[code]
    r = Reply(status, {"error": message, "code": code},
              outcome="throttled" if status == 429 else "auth_failed:" + code)
    if status == 429:
        r.headers.append(("Retry-After", str(retry_after)))
    return r


class Credential:
    """An API key or bearer token and what it may do.  No tenant means
    every tenant (the server's bootstrap admin)."""

    def __init__(self, spec, bearer):
        if isinstance(spec, str):
            spec = {"key": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("key"),
                                                        str):
            raise ControlError("a credential is a string or "
                               "{\"key\": ..., ...}")
        self.key = spec["key"]
        if not bearer and not self.key.startswith(API_KEY_PREFIX):
            raise ControlError("API keys start with %r (the server refuses "
                               "any other key)" % API_KEY_PREFIX)
        self.tenant_id = uuid.UUID(spec["tenant_id"]) \
            if spec.get("tenant_id") else None
        self.store_ids = {uuid.UUID(s) for s in spec["store_ids"]} \
            if spec.get("store_ids") else None
        self.agent_id = uuid.UUID(spec["agent_id"]) \
            if spec.get("agent_id") else None
        self.read_only = bool(spec.get("read_only", False))
        self.spec = spec

    def check(self, tenant_id, store_id, write):
        """None if allowed, else the server's 403 message.  A store_id of
        None checks the tenant only (as the server's admin routes do)."""
        if write and self.read_only:
            return "Write permission required"
        if self.tenant_id is None:
            return None
        if self.tenant_id != tenant_id:
            return "Tenant access denied"
        if store_id is not None and self.store_ids is not None and \
                store_id not in self.store_ids:
            return "Store access denied"
        return None


ADMIN = Credential({"key": API_KEY_PREFIX + "bootstrap"}, False)


class Stored:
    __slots__ = ("env", "seq", "sequenced_at", "receipt")

    def __init__(self, env, seq, sequenced_at, receipt):
        self.env = env
        self.seq = seq
        self.sequenced_at = sequenced_at
        self.receipt = receipt


class Sequencer(RequestLog):
    DEFAULTS = {
        "api_keys": [],          # no credentials at all: auth is off
        "bearer_tokens": [],
        "rate_limit_per_minute": None,
        "sign_receipts": True,
        "sequencer_key_version": 0,
        "read_receipts": True,   # mock extension: receipt beside each read
        "serve_ves_reads": True,  # false: reads as the server (legacy table)
        "retry_after": 60,        # seconds in 429 answers (server: 60)
        "schema_reject_event_types": [],
    }

    def __init__(self, config=None, seed=None, sequencer_id=None):
        self.lock = threading.RLock()
        self.base_config = dict(self.DEFAULTS)
        self.base_config.update(config or {})
        self.seed = seed or os.urandom(32)
        self.public_key = ed25519_public(self.seed)
        self.sequencer_id = sequencer_id or uuid.uuid4()
        self.init_request_log()
        self.reset()

    # -- state -------------------------------------------------------------
    def reset(self):
        with self.lock:
            self.config = json.loads(json.dumps(self.base_config))
            self.apply_credentials()
            self.clear_records()
            self.faults = []
            self.keys = {}           # (tenant, agent, key_id) -> entry
            self.streams = {}        # (tenant, store) -> {"head", "events"}
            self.by_id = {}          # event_id -> Stored
            self.entity_versions = {}
            self.command_ids = set()
            self.windows = {}        # rate limit key -> [start, count]
            self.stats = {"requests": 0, "accepted": 0, "replayed": 0,
                          "rejected": 0, "rejections": {}, "reads": 0,
                          "served": 0, "auth_failures": 0, "throttled": 0,
                          "injected": 0, "forged_served": 0}

    def apply_credentials(self):
        self.api_keys = {}
        for spec in self.config["api_keys"] or []:
            c = Credential(spec, bearer=False)
            self.api_keys[c.key] = c
        self.tokens = {}
        for spec in self.config["bearer_tokens"] or []:
            c = Credential(spec, bearer=True)
            self.tokens[c.key] = c

    def stream(self, tenant_id, store_id):
        return self.streams.setdefault((tenant_id, store_id),
                                       {"head": 0, "events": []})

    # -- faults ------------------------------------------------------------
    def take_fault(self, kinds, path=None, tenant_id=None, store_id=None,
                   seq=None, any_seq=True):
        """The first queued fault of one of `kinds` that matches, consumed
        once.  A fault without `seq` matches any sequence number only when
        any_seq is true.  Caller holds the lock."""
        for f in self.faults:
            if f.kind not in kinds:
                continue
            if f.seq is None and not any_seq:
                continue
            if path is not None and f.path is not None and \
                    not path.startswith(f.path):
                continue
            if tenant_id is not None and \
                    not f.stream_matches(tenant_id, store_id):
                continue
            if seq is not None and f.seq is not None and f.seq != seq:
                continue
            self.consume(f)
            return f
        return None

    def consume(self, f):
        if f.times is not None:
            f.times -= 1
            if f.times <= 0:
                self.faults.remove(f)
        self.stats["injected"] += 1

    def fault_reply(self, f):
        if f.kind == "reset":
            return Reply(reset=True, outcome="injected:reset")
        if f.kind == "throttle":
            self.stats["throttled"] += 1
            r = auth_error("rate_limited", f.retry_after
                           if f.retry_after is not None
                           else self.config["retry_after"])
        elif f.status == 503:
            # What the server's middleware answers when its database pool
            # is exhausted.
            r = Reply(503, {"error": "Service temporarily unavailable",
                            "code": "pool_exhausted"})
        else:
            r = api_error(f.status, "Internal server error", "")
        r.outcome = "injected:" + f.kind
        return r

    # -- auth --------------------------------------------------------------
    def authenticate(self, headers):
        """(credential, None) or (None, refusal reply)."""
        if not self.api_keys and not self.tokens:
            return ADMIN, None
        cred = headers.get("authorization") or headers.get("x-api-key")
        if cred is None:
            return None, auth_error("missing_auth")
        if cred.startswith("Bearer "):
            c = self.tokens.get(cred[7:])
            return (c, None) if c else (None, auth_error("invalid_jwt"))
        if cred.startswith("ApiKey "):
            cred = cred[7:]
        elif not cred.startswith(API_KEY_PREFIX):
            return None, auth_error("missing_auth")
        c = self.api_keys.get(cred) if cred.startswith(API_KEY_PREFIX) \
            else None
        return (c, None) if c else (None, auth_error("invalid_api_key"))

    def rate_limited(self, cred):
        limit = self.config.get("rate_limit_per_minute")
        if not limit:
            return False
        key = "bootstrap" if cred.tenant_id is None else str(cred.tenant_id)
        now = time.monotonic()
        w = self.windows.get(key)
        if w is None or now - w[0] >= 60:
            w = self.windows[key] = [now, 0]
        if w[1] >= int(limit):
            return True
        w[1] += 1
        return False

    # -- dispatch ----------------------------------------------------------
    def handle(self, method, target, headers, body, peer):
        parts = urlsplit(target)
        if parts.path.startswith("/_"):
            try:
                with self.lock:
                    status, obj = self.control(method, parts, body)
            except (ControlError, ValueError, TypeError, KeyError) as e:
                status, obj = 400, {"error": str(e)}
            return Reply(status, obj, outcome="control")
        with self.lock:
            self.stats["requests"] += 1
            try:
                reply = self.route(method, parts, headers, body)
            except Refusal as r:
                reply = r.reply
            except Exception as e:  # a mock bug must show, not hang
                sys.stderr.write("sequencer mock: internal error: %r\n" % e)
                reply = Reply(500, {"error": "mock internal error: %r" % e},
                              outcome="mock_bug")
            if reply.outcome.startswith("auth_failed"):
                self.stats["auth_failures"] += 1
            rec = self.add_record(method, target, headers, body, peer, reply)
        self.write_record(rec)
        return reply

    def route(self, method, parts, headers, body):
        path = parts.path
        f = self.take_fault(REQUEST_FAULTS, path=path)
        delay = 0
        if f is not None:
            if f.kind != "delay":
                return self.fault_reply(f)
            delay = f.delay_ms
        reply = self.route_api(method, parts, headers, body)
        reply.delay = delay
        return reply

    def route_api(self, method, parts, headers, body):
        path = parts.path
        if path in ("/health", "/ready"):
            return Reply(200, {"status": "healthy"}, outcome="health")
        known = {"/api/v1/ves/events/ingest": "POST",
                 "/api/v1/events": "GET", "/api/v1/head": "GET",
                 "/api/v1/agents/keys": "POST"}
        if path not in known:
            return Reply(404, None, outcome="not_found")
        if method != known[path]:
            return Reply(405, None, outcome="bad_method")
        cred, refusal = self.authenticate(headers)
        if refusal is not None:
            return refusal
        if self.rate_limited(cred):
            self.stats["throttled"] += 1
            return auth_error("rate_limited", self.config["retry_after"])
        if path == "/api/v1/ves/events/ingest":
            return self.ingest(cred, headers, body)
        if path == "/api/v1/events":
            return self.read(cred, parts.query)
        if path == "/api/v1/head":
            return self.head(cred, parts.query)
        return self.register_key_api(cred, headers, body)

    # -- request bodies ----------------------------------------------------
    @staticmethod
    def json_body(headers, body):
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if not (ctype == "application/json" or
                (ctype.startswith("application/") and
                 ctype.endswith("+json"))):
            raise Refusal(text_error(
                415, "Expected request with `Content-Type: "
                "application/json`", "bad_content_type"))
        if len(body) > MAX_BODY_SIZE:
            raise Refusal(text_error(
                413, "Failed to buffer the request body: length limit "
                "exceeded", "body_too_large"))
        try:
            return json.loads(body.decode("utf-8"), parse_float=_float,
                              parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as e:
            raise Refusal(text_error(
                400, "Failed to parse the request body as JSON: %s" % e,
                "bad_json"))

    # -- ingest ------------------------------------------------------------
    def ingest(self, cred, headers, body):
        req = self.json_body(headers, body)
        if not isinstance(req, dict):
            raise unprocessable("", "invalid type: %s, expected struct "
                                "VesIngestRequest" % _type_name(req))
        agent_id = _get_uuid(req, "agentId", "")
        if "events" not in req:
            raise unprocessable("", "missing field `events`")
        if not isinstance(req["events"], list):
            raise unprocessable("events", "invalid type: %s, expected a "
                                "sequence" % _type_name(req["events"]))
        events = [Envelope(e, "events[%d]" % i)
                  for i, e in enumerate(req["events"])]
        if not events:
            return api_error(400, "events must not be empty", "empty_batch")
        tenant_id, store_id = events[0].tenant_id, events[0].store_id
        for e in events:
            if e.tenant_id != tenant_id or e.store_id != store_id:
                return api_error(400, "All events in a batch must share the "
                                 "same tenantId and storeId", "mixed_batch")
        if cred.agent_id is not None and cred.agent_id != agent_id:
            return api_error(403, "Agent mismatch", "forbidden")
        for e in events:
            if e.source_agent_id != agent_id:
                return api_error(400, "event source_agent_id must match "
                                 "request agent_id", "agent_mismatch")
        denied = cred.check(tenant_id, store_id, write=True)
        if denied:
            return api_error(403, denied, "forbidden")
        refusal = self.enforce_limits(events)
        if refusal is not None:
            return refusal
        rejections = []
        valid = []
        for e in events:
            if e.event_type in self.config["schema_reject_event_types"]:
                rejections.append(self.rejection(
                    e.event_id, "schema_validation",
                    "No schema registered for event type '%s'"
                    % e.event_type))
            else:
                valid.append(e)
        if not valid:
            return self.ingest_reply(tenant_id, store_id, 0, rejections, [],
                                     None, None)
        return self.sequence(tenant_id, store_id, valid, rejections)

    def enforce_limits(self, events):
        if len(events) > MAX_EVENTS_PER_BATCH:
            return api_error(413, "Batch exceeds max_events_per_batch "
                             "(%d > %d)" % (len(events),
                                            MAX_EVENTS_PER_BATCH),
                             "batch_too_large")
        for e in events:
            for name, value, most in (("entity_type", e.entity_type, 128),
                                      ("entity_id", e.entity_id, 512),
                                      ("event_type", e.event_type, 256)):
                if not 1 <= len(value.encode("utf-8")) <= most:
                    return api_error(400, "Event %s %s must be between 1 "
                                     "and %d characters"
                                     % (e.event_id, name, most),
                                     "bad_field")
            if e.payload_kind == 0:
                if e.payload is None:
                    return api_error(400, "Event %s missing payload for "
                                     "plaintext payload_kind" % e.event_id,
                                     "bad_field")
                size = len(json.dumps(e.payload, separators=(",", ":"),
                                      ensure_ascii=False).encode())
            else:
                if e.payload_encrypted is None:
                    return api_error(400, "Event %s missing "
                                     "payload_encrypted for encrypted "
                                     "payload_kind" % e.event_id,
                                     "bad_field")
                size = len(json.dumps(e.payload_encrypted).encode())
            if size > MAX_EVENT_PAYLOAD_SIZE:
                return api_error(413, "Event %s payload exceeds "
                                 "max_event_payload_size (%d > %d)"
                                 % (e.event_id, size,
                                    MAX_EVENT_PAYLOAD_SIZE),
                                 "payload_too_large")
        return None

    def rejection(self, event_id, reason, message):
        key = reason.split(":")[0]
        self.stats["rejections"][key] = \
            self.stats["rejections"].get(key, 0) + 1
        self.stats["rejected"] += 1
        return {"event_id": str(event_id), "reason": reason,
                "message": message}

    def validate(self, e):
        """The server's per-event checks, in its order: the first failing
        one as (reason, message), or None."""
        if e.ves_version != 1:
            return ("unsupported_version",
                    "Expected VES version 1, got %d" % e.ves_version)
        if e.payload_kind == 0:
            if e.payload_encrypted is not None:
                return ("schema_validation: payload_encrypted",
                        "payload_encrypted must be omitted for plaintext "
                        "events")
            if e.cipher_hash != ZERO32:
                return ("schema_validation: payload_cipher_hash",
                        "payload_cipher_hash must be zero for plaintext "
                        "events")
        else:
            if e.payload is not None:
                return ("schema_validation: payload",
                        "payload must be omitted for encrypted events")
            # VES-ENC-1 is outside this mock: it cannot check the cipher
            # hash, so it refuses encrypted events.
            return ("schema_validation: payload_encrypted",
                    "the mock sequencer does not accept encrypted payloads")
        if not is_rfc3339(e.created_at):
            return ("schema_validation: created_at",
                    "created_at must be RFC3339")
        try:
            ok = payload_plain_hash(e.payload) == e.plain_hash
        except CanonicalError:
            ok = False
        if not ok:
            return ("invalid_payload_hash", "Payload hash verification failed")
        key = self.keys.get((e.tenant_id, e.source_agent_id, e.agent_key_id))
        if key is None:
            return ("agent_key_invalid: Agent key not found",
                    "Agent key not found")
        if key["revoked"]:
            return ("agent_key_invalid: Agent key has been revoked",
                    "Agent key has been revoked")
        if e.scheme not in (None, 0, 1):
            return ("invalid_signature",
                    "Agent signature scheme %d is not allowed under the "
                    "legacy profile" % e.scheme)
        if not ed25519_verify(key["public_key"], e.signature,
                              e.signing_hash()):
            return ("invalid_signature",
                    "Agent signature verification failed: "
                    "VerificationFailed")
        return None

    def make_receipt(self, e, seq, sequenced_at):
        h = receipt_hash(e.tenant_id, e.store_id, e.event_id, seq,
                         e.signing_hash())
        r = {"sequencerId": str(self.sequencer_id),
             "eventId": str(e.event_id),
             "sequenceNumber": seq,
             "sequencedAt": utc_us(sequenced_at, z=False),
             "receiptHash": h.hex()}
        if self.config["sign_receipts"]:
            r["signatureAlg"] = "ed25519"
            r["sequencerSignature"] = ed25519_sign(self.seed, h).hex()
        else:
            r["signatureAlg"] = "none"
            r["sequencerSignature"] = ""
        r["sequencerKeyVersion"] = int(self.config["sequencer_key_version"])
        if self.config["sign_receipts"]:
            r["receiptSignatureScheme"] = 1
        return r

    def sequence(self, tenant_id, store_id, events, rejections):
        receipts = []
        pending = []
        seen = set()
        for e in events:
            if e.event_id in seen:
                rejections.append(self.rejection(
                    e.event_id, "duplicate_event_id",
                    "Event %s duplicated in batch" % e.event_id))
                continue
            seen.add(e.event_id)
            old = self.by_id.get(e.event_id)
            if old is None:
                pending.append(e)
            elif (old.env.tenant_id, old.env.store_id) != (tenant_id,
                                                           store_id):
                rejections.append(self.rejection(
                    e.event_id, "duplicate_event_id",
                    "Event ID already exists"))
            elif not old.env.same_content(e):
                rejections.append(self.rejection(
                    e.event_id, "duplicate_event_id",
                    "Event ID already exists with different contents"))
            else:
                self.stats["replayed"] += 1
                receipts.append(old.receipt)
        candidates = []
        batch_commands = set()
        for e in pending:
            bad = self.validate(e)
            if bad is not None:
                rejections.append(self.rejection(e.event_id, *bad))
                continue
            if e.command_id is not None:
                if e.command_id in batch_commands:
                    rejections.append(self.rejection(
                        e.event_id, "duplicate_command_id",
                        "Command %s duplicated in batch" % e.command_id))
                    continue
                batch_commands.add(e.command_id)
            candidates.append(e)
        reserved = set()
        st = self.stream(tenant_id, store_id)
        start = end = None
        accepted = 0
        for e in candidates:
            ck = (tenant_id, store_id, e.command_id)
            if e.command_id is not None:
                if ck in self.command_ids and ck not in reserved:
                    rejections.append(self.rejection(
                        e.event_id, "duplicate_command_id",
                        "Command %s already processed" % e.command_id))
                    continue
                self.command_ids.add(ck)
                reserved.add(ck)
            ek = (tenant_id, store_id, e.entity_type, e.entity_id)
            actual = self.entity_versions.get(ek, 0)
            if e.base_version is not None and e.base_version != actual:
                if e.command_id is not None:
                    self.command_ids.discard(ck)
                rejections.append(self.rejection(
                    e.event_id, "version_conflict: expected %d, actual %d"
                    % (e.base_version, actual),
                    "Version conflict: expected %d, actual %d"
                    % (e.base_version, actual)))
                continue
            seq = st["head"] + 1
            if self.take_fault(("skip",), tenant_id=tenant_id,
                               store_id=store_id, seq=seq):
                seq += 1
            elif st["head"] > 0 and self.take_fault(
                    ("repeat",), tenant_id=tenant_id, store_id=store_id,
                    seq=st["head"]):
                seq = st["head"]
            now = time.time()
            stored = Stored(e, seq, now, self.make_receipt(e, seq, now))
            st["events"].append(stored)
            st["head"] = max(st["head"], seq)
            self.by_id[e.event_id] = stored
            self.entity_versions[ek] = actual + 1
            self.stats["accepted"] += 1
            accepted += 1
            if start is None:
                start = seq
            end = seq
            receipts.append(stored.receipt)
        return self.ingest_reply(tenant_id, store_id, accepted, rejections,
                                 receipts, start, end)

    def ingest_reply(self, tenant_id, store_id, accepted, rejections,
                     receipts, start, end):
        out = {"batchId": str(uuid.uuid4()),
               "eventsAccepted": accepted,
               "eventsRejected": len(rejections),
               "sequenceStart": start,
               "sequenceEnd": end,
               "headSequence": self.stream(tenant_id, store_id)["head"]}
        if rejections:
            out["rejections"] = rejections
        if receipts:
            out["receipts"] = receipts
        return Reply(200, out, outcome="ingest:accepted=%d,replayed=%d,"
                     "rejected=%d" % (accepted, len(receipts) - accepted,
                                      len(rejections)))

    # -- reads -------------------------------------------------------------
    @staticmethod
    def query_stream(query):
        q = parse_qs(query, keep_blank_values=True)
        out = {}
        for name in ("tenant_id", "store_id"):
            if name not in q:
                raise Refusal(text_error(
                    400, "Failed to deserialize query string: missing field "
                    "`%s`" % name, "bad_query"))
            try:
                out[name] = uuid.UUID(q[name][-1])
            except ValueError:
                raise Refusal(text_error(
                    400, "Failed to deserialize query string: %s: UUID "
                    "parsing failed" % name, "bad_query"))
        for name in ("from", "limit"):
            if name in q:
                v = q[name][-1]
                if not v.isdigit() or int(v) >= 1 << (64 if name == "from"
                                                       else 32):
                    raise Refusal(text_error(
                        400, "Failed to deserialize query string: %s: "
                        "invalid digit found in string" % name,
                        "bad_query"))
                out[name] = int(v)
        return out

    def head(self, cred, query):
        q = self.query_stream(query)
        denied = cred.check(q["tenant_id"], q["store_id"], write=False)
        if denied:
            return text_error(403, denied, "forbidden")
        st = self.streams.get((q["tenant_id"], q["store_id"]))
        if not self.config["serve_ves_reads"]:
            st = None
        return Reply(200, {"head_sequence": st["head"] if st else 0},
                     outcome="head")

    def read(self, cred, query):
        q = self.query_stream(query)
        limit = q.get("limit", 100)
        if limit == 0:
            return text_error(400, "limit must be greater than 0",
                              "bad_query")
        limit = min(limit, 1000)
        denied = cred.check(q["tenant_id"], q["store_id"], write=False)
        if denied:
            return text_error(403, denied, "forbidden")
        tenant_id, store_id = q["tenant_id"], q["store_id"]
        first = max(q.get("from", 0), 1)
        last = first + limit - 1
        st = self.streams.get((tenant_id, store_id))
        if not self.config["serve_ves_reads"]:
            # The server reads its legacy table, which VES ingest never
            # writes: nothing pushed here is ever served.
            st = None
        rows = sorted((s for s in (st["events"] if st else [])
                       if first <= s.seq <= last), key=lambda s: s.seq)
        self.stats["reads"] += 1
        items = []
        hidden = []
        for n, s in enumerate(rows):
            # A read fault without `seq` hits the first event of a read.
            where = dict(tenant_id=tenant_id, store_id=store_id, seq=s.seq,
                         any_seq=n == 0)
            item = self.read_item(s)
            if self.take_fault(("gap",), **where):
                hidden.append(s.seq)
                continue
            f = self.take_fault(("forge",), **where)
            if f is not None:
                self.forge(item, f.how)
                self.stats["forged_served"] += 1
            items.append(item)
            if self.take_fault(("duplicate",), **where):
                items.append(json.loads(json.dumps(item)))
        self.stats["served"] += len(items)
        outcome = "read:%d" % len(items)
        if hidden:
            outcome += ",hidden=%s" % ",".join(map(str, hidden))
        return Reply(200, {"events": items, "count": len(items)},
                     outcome=outcome)

    def read_item(self, s):
        env = s.env.served(s.seq, s.sequenced_at)
        item = {"envelope": env, "sequenced_at": env["sequenced_at"]}
        if self.config["read_receipts"]:
            item["receipt"] = dict(s.receipt)
        return item

    @staticmethod
    def forge(item, how):
        env = item["envelope"]
        if how in ("payload", "rehash"):
            p = env.get("payload")
            env["payload"] = dict(p, forged=True) if isinstance(p, dict) \
                else {"forged": True, "was": p}
            if how == "rehash":
                env["payload_plain_hash"] = hex0x(
                    payload_plain_hash(env["payload"]))
        elif how == "signature":
            sig = bytearray(unhex(env["agent_signature"]))
            sig[0] ^= 0x01
            env["agent_signature"] = hex0x(bytes(sig))
        elif how == "receipt" and "receipt" in item:
            h = bytearray(bytes.fromhex(item["receipt"]["receiptHash"]))
            h[0] ^= 0x01
            item["receipt"]["receiptHash"] = bytes(h).hex()

    # -- keys --------------------------------------------------------------
    def register_key(self, spec):
        if not isinstance(spec, dict):
            raise ControlError("a key is a JSON object")
        tenant = uuid.UUID(spec["tenant_id"])
        agent = uuid.UUID(spec["agent_id"])
        key_id = int(spec.get("key_id", 1))
        k = (tenant, agent, key_id)
        if spec.get("revoke"):
            if k not in self.keys:
                raise ControlError("no such key")
            self.keys[k]["revoked"] = True
            return self.describe_key(k)
        if "public_key" in spec:
            pub = unhex(spec["public_key"], 32)
        elif "seed" in spec:
            pub = ed25519_public(unhex(spec["seed"], 32))
        else:
            raise ControlError("give public_key (or seed)")
        self.keys[k] = {"public_key": pub, "revoked": False}
        return self.describe_key(k)

    def describe_key(self, k):
        e = self.keys[k]
        return {"tenant_id": str(k[0]), "agent_id": str(k[1]),
                "key_id": k[2], "public_key": hex0x(e["public_key"]),
                "revoked": e["revoked"]}

    def register_key_api(self, cred, headers, body):
        """POST /api/v1/agents/keys in the server's shape (camelCase)."""
        req = self.json_body(headers, body)
        if not isinstance(req, dict):
            raise unprocessable("", "invalid type: %s, expected struct "
                                "RegisterAgentKeyRequest" % _type_name(req))
        tenant = _get_uuid(req, "tenantId", "")
        agent = _get_uuid(req, "agentId", "")
        key_id = _get_uint(req, "keyId", "", 32)
        pub = req.get("publicKey")
        if not isinstance(pub, str):
            raise unprocessable("", "missing field `publicKey`")
        if cred.read_only or cred.check(tenant, None, write=True):
            return text_error(403, "Admin permission required", "forbidden")
        try:
            raw = bytes.fromhex(pub[2:] if pub.startswith("0x") else pub)
        except ValueError as e:
            return text_error(400, "Invalid public_key hex: %s" % e,
                              "bad_key")
        if len(raw) != 32:
            return text_error(400, "Public key must be 32 bytes", "bad_key")
        self.keys[(tenant, agent, key_id)] = {"public_key": raw,
                                              "revoked": False}
        return Reply(200, {"success": True, "tenantId": str(tenant),
                           "agentId": str(agent), "keyId": key_id,
                           "keyAlgorithm": req.get("keyAlgorithm") or 0,
                           "message": "Agent key registered successfully"},
                     outcome="key_registered")

    # -- control API -------------------------------------------------------
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
            out = json.loads(json.dumps(self.stats))
            out["faults_pending"] = [f.describe() for f in self.faults]
            return 200, out
        if route == "/_reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if route == "/_sequencer" and method == "GET":
            return 200, {"sequencer_id": str(self.sequencer_id),
                         "public_key": hex0x(self.public_key),
                         "signature_alg": "ed25519"
                         if self.config["sign_receipts"] else "none",
                         "sequencer_key_version":
                         self.config["sequencer_key_version"]}
        if route == "/_keys":
            if method == "POST":
                specs = spec.get("keys", [spec]) if isinstance(spec, dict) \
                    else spec
                if not isinstance(specs, list):
                    raise ControlError("keys must be a list")
                done = [self.register_key(s) for s in specs]
                return 200, {"ok": True, "keys": done}
            return 200, {"keys": [self.describe_key(k)
                                  for k in sorted(self.keys, key=str)]}
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
                old = dict(self.config)
                self.config.update(spec)
                try:
                    self.apply_credentials()
                except ControlError:
                    self.config = old
                    self.apply_credentials()
                    raise
            return 200, {"config": self.config}
        if route == "/_streams" and method == "GET":
            return 200, {"streams": [
                {"tenant_id": str(t), "store_id": str(s),
                 "head": v["head"], "count": len(v["events"])}
                for (t, s), v in sorted(self.streams.items(), key=str)]}
        if route == "/_events" and method == "GET":
            t = uuid.UUID(query["tenant_id"][0])
            s = uuid.UUID(query["store_id"][0])
            st = self.streams.get((t, s), {"head": 0, "events": []})
            rows = sorted(st["events"], key=lambda r: r.seq)
            return 200, {"head": st["head"],
                         "events": [self.read_item(r) for r in rows]}
        if route == "/_sign" and method == "POST":
            return 200, {"envelope": sign_envelope(
                spec["envelope"], unhex(spec["seed"], 32))}
        return 404, {"error": "no such control endpoint"}


# ---------------------------------------------------------------------------
# HTTP server (threaded, keep-alive)
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Mock VES v1 sequencer (StateSet-compatible HTTP API) "
        "for pg_ves tests.")
    ap.add_argument("--port", type=int, default=0,
                    help="port on --host (default 0: pick a free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file",
                    help="write the port here (atomically) once listening")
    ap.add_argument("--api-key", action="append", default=[],
                    help="accept this API key (starts with ss_); "
                    "repeatable. Without keys or tokens, auth is off.")
    ap.add_argument("--bearer-token", action="append", default=[],
                    help="accept 'Authorization: Bearer TOKEN'; repeatable")
    ap.add_argument("--sequencer-seed",
                    help="hex Ed25519 seed of the receipt key (default: "
                    "random)")
    ap.add_argument("--sequencer-id", help="UUID in receipts (default: "
                    "random)")
    ap.add_argument("--config", default="{}",
                    help="JSON overriding the configuration (see README)")
    ap.add_argument("--log", help="append each request to this file, one "
                    "JSON line each")
    ap.add_argument("--max-records", type=int, default=0,
                    help="keep only the newest N records in memory")
    ap.add_argument("--quiet", action="store_true",
                    help="print nothing on startup")
    ap.add_argument("--verbose", action="store_true",
                    help="log each request to stderr")
    args = ap.parse_args(argv)

    config = json.loads(args.config)
    if args.api_key:
        config["api_keys"] = config.get("api_keys", []) + args.api_key
    if args.bearer_token:
        config["bearer_tokens"] = config.get("bearer_tokens", []) + \
            args.bearer_token
    try:
        seq = Sequencer(config,
                        seed=unhex(args.sequencer_seed, 32)
                        if args.sequencer_seed else None,
                        sequencer_id=uuid.UUID(args.sequencer_id)
                        if args.sequencer_id else None)
    except ControlError as e:
        ap.error(str(e))
    seq.max_records = args.max_records
    seq.open_log(args.log)
    srv = MockServer((args.host, args.port), seq, "sequencer mock",
                     SERVER_NAME, args.verbose)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    port = srv.server_address[1]
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)
    if not args.quiet:
        sys.stderr.write("sequencer mock listening on %s:%d (receipt key "
                         "%s)\n" % (args.host, port, seq.public_key.hex()))
        sys.stderr.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
