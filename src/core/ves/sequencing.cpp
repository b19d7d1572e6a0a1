#include "core/ves/sequencing.hpp"

#include <cmath>
#include <ctime>

#include "core/crypto/crypto.hpp"
#include "core/json/canonical_json.hpp"
#include "core/ves/envelope.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::ves::sequencing {

namespace {

[[noreturn]] void unmappable(const std::string &path, const std::string &what) {
  throw RequestError("invalid_body", (path.empty() ? "" : path + ": ") + what);
}

const char *type_name(const json::Value &v) {
  switch (v.kind()) {
    case json::Kind::null:
      return "null";
    case json::Kind::boolean:
      return "boolean";
    case json::Kind::number:
      return "number";
    case json::Kind::string:
      return "string";
    case json::Kind::array:
      return "sequence";
    case json::Kind::object:
      return "map";
  }
  return "value";
}

// The fields of one envelope, read as serde maps them.
class Reader {
 public:
  Reader(const json::Value &object, std::string path) : o_(object), path_(std::move(path)) {
    if (o_.kind() != json::Kind::object)
      unmappable(path_, std::string("invalid type: ") + type_name(o_) +
                            ", expected struct VesEventEnvelope");
  }

  const json::Value *get(const char *name) const {
    const json::Value *v = o_.find(name);
    return v && !v->is_null() ? v : nullptr;
  }

  const json::Value &need(const char *name) const {
    const json::Value *v = get(name);
    if (!v) unmappable(path_, std::string("missing field `") + name + "`");
    return *v;
  }

  [[noreturn]] void bad(const char *name, const std::string &why) const {
    unmappable(path_ + "." + name, why);
  }

  std::optional<std::uint64_t> uint(const char *name, int bits, bool required) const {
    const json::Value *v = required ? &need(name) : get(name);
    if (!v) return std::nullopt;
    const double max = bits == 64 ? 18446744073709551615.0 : std::ldexp(1.0, bits) - 1;
    if (v->kind() != json::Kind::number || v->as_number() < 0 || v->as_number() > max ||
        std::floor(v->as_number()) != v->as_number())
      bad(name,
          std::string("invalid value: ") + type_name(*v) + ", expected u" + std::to_string(bits));
    return static_cast<std::uint64_t>(v->as_number());
  }

  const std::string &string(const char *name) const {
    const json::Value *v = o_.find(name);
    if (!v) unmappable(path_, std::string("missing field `") + name + "`");
    if (v->kind() != json::Kind::string)
      bad(name, std::string("invalid type: ") + type_name(*v) + ", expected a string");
    return v->as_string();
  }

  std::optional<Uuid> uuid(const char *name, bool required) const {
    const json::Value *v = required ? &need(name) : get(name);
    if (!v) return std::nullopt;
    if (v->kind() != json::Kind::string)
      bad(name, std::string("invalid type: ") + type_name(*v) + ", expected UUID");
    try {
      return parse_uuid(v->as_string());
    } catch (const Error &) {
      bad(name, "UUID parsing failed: invalid character");
    }
  }

  template <std::size_t N>
  std::array<std::uint8_t, N> hex(const char *name) const {
    std::string_view s = string(name);
    if (s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0) s.remove_prefix(2);
    std::vector<std::uint8_t> bin;
    try {
      bin = crypto::hex2bin(s);
    } catch (const Error &) {
      bad(name, "Invalid character");
    }
    if (bin.size() != N) bad(name, "expected " + std::to_string(N) + " bytes");
    std::array<std::uint8_t, N> out;
    std::copy(bin.begin(), bin.end(), out.begin());
    return out;
  }

 private:
  const json::Value &o_;
  std::string path_;
};

Pushed read_one(const json::Value &v, const std::string &path) {
  const Reader r(v, path);
  Pushed p;
  Event &e = p.event;
  e.ves_version = static_cast<std::uint32_t>(*r.uint("ves_version", 32, true));
  e.event_id = *r.uuid("event_id", true);
  e.tenant_id = *r.uuid("tenant_id", true);
  e.store_id = *r.uuid("store_id", true);
  e.source_agent_id = *r.uuid("source_agent_id", true);
  e.agent_key_id = static_cast<std::uint32_t>(*r.uint("agent_key_id", 32, true));
  e.entity_type = r.string("entity_type");
  e.entity_id = r.string("entity_id");
  e.event_type = r.string("event_type");
  e.created_at = r.string("created_at");
  e.payload_kind = static_cast<std::uint32_t>(*r.uint("payload_kind", 32, true));
  if (e.payload_kind > 1)
    r.bad("payload_kind",
          "invalid value: " + std::to_string(e.payload_kind) + ", expected one of: 0, 1");
  if (const json::Value *pl = r.get("payload")) e.payload = *pl;
  if (const json::Value *enc = r.get("payload_encrypted")) e.payload_encrypted = *enc;
  e.payload_plain_hash = r.hex<32>("payload_plain_hash");
  e.payload_cipher_hash = r.hex<32>("payload_cipher_hash");
  e.agent_signature = r.hex<64>("agent_signature");
  if (const json::Value *s = r.get("agent_signature_scheme")) {
    if (s->kind() != json::Kind::number || std::floor(s->as_number()) != s->as_number() ||
        std::fabs(s->as_number()) > 2147483647.0)
      r.bad("agent_signature_scheme",
            std::string("invalid type: ") + type_name(*s) + ", expected i32");
    p.signature_scheme = static_cast<std::int64_t>(s->as_number());
  }
  p.command_id = r.uuid("command_id", false);
  p.base_version = r.uint("base_version", 64, false);
  (void)r.uint("sequence_number", 64, false);
  p.raw = v;
  return p;
}

std::string canonical_or_raw(const std::optional<json::Value> &v) {
  if (!v) return "";
  try {
    return "c" + jcs::canonicalize(*v);
  } catch (const Error &) {
    return "x";
  }
}

bool is_zero(const Hash32 &h) {
  for (std::uint8_t b : h)
    if (b) return false;
  return true;
}

std::string id_text(const Uuid &id) { return format_uuid(id); }

}  // namespace

Pushed read_envelope(const json::Value &envelope) { return read_one(envelope, ""); }

std::vector<Pushed> read_request(const Uuid &agent, const json::Value &body) {
  const json::Value *events = &body;
  if (body.kind() == json::Kind::object) {
    const json::Value *a = body.find("agentId");
    if (!a || a->is_null()) unmappable("", "missing field `agentId`");
    Uuid given{};
    try {
      given = a->kind() == json::Kind::string ? parse_uuid(a->as_string()) : Uuid{};
      if (a->kind() != json::Kind::string) throw Error("invalid_uuid", "");
    } catch (const Error &) {
      unmappable("agentId", "UUID parsing failed: invalid character");
    }
    if (given != agent)
      throw RequestError("invalid_batch", "the body's agentId " + id_text(given) +
                                              " is not the agent_id argument " + id_text(agent));
    events = body.find("events");
    if (!events) unmappable("", "missing field `events`");
  }
  if (events->kind() != json::Kind::array)
    unmappable(body.kind() == json::Kind::object ? "events" : "",
               std::string("invalid type: ") + type_name(*events) + ", expected a sequence");
  std::vector<Pushed> out;
  const auto &list = events->as_array();
  out.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i)
    out.push_back(read_one(list[i], "events[" + std::to_string(i) + "]"));
  if (out.empty()) throw RequestError("invalid_batch", "events must not be empty");
  for (const Pushed &p : out)
    if (p.event.tenant_id != out[0].event.tenant_id || p.event.store_id != out[0].event.store_id)
      throw RequestError("invalid_batch",
                         "All events in a batch must share the same tenantId and storeId");
  for (const Pushed &p : out)
    if (p.event.source_agent_id != agent)
      throw RequestError("invalid_batch", "event source_agent_id must match request agent_id");
  if (out.size() > max_events_per_batch)
    throw RequestError("too_large", "Batch exceeds max_events_per_batch (" +
                                        std::to_string(out.size()) + " > " +
                                        std::to_string(max_events_per_batch) + ")");
  for (const Pushed &p : out) {
    const Event &e = p.event;
    const std::string id = id_text(e.event_id);
    const struct {
      const char *name;
      const std::string &value;
      std::size_t most;
    } lengths[] = {{"entity_type", e.entity_type, 128},
                   {"entity_id", e.entity_id, 512},
                   {"event_type", e.event_type, 256}};
    for (const auto &l : lengths)
      if (l.value.empty() || l.value.size() > l.most)
        throw RequestError("invalid_batch", "Event " + id + " " + l.name +
                                                " must be between 1 and " + std::to_string(l.most) +
                                                " characters");
    const std::optional<json::Value> &body_of =
        e.payload_kind == 0 ? e.payload : e.payload_encrypted;
    if (!body_of)
      throw RequestError(
          "invalid_batch",
          e.payload_kind == 0
              ? "Event " + id + " missing payload for plaintext payload_kind"
              : "Event " + id + " missing payload_encrypted for encrypted payload_kind");
    std::size_t size = 0;
    try {
      size = jcs::canonicalize(*body_of).size();
    } catch (const Error &) {
    }
    if (size > max_event_payload_size)
      throw RequestError("too_large", "Event " + id + " payload exceeds max_event_payload_size (" +
                                          std::to_string(size) + " > " +
                                          std::to_string(max_event_payload_size) + ")");
  }
  return out;
}

std::optional<Rejection> check_envelope(const Pushed &p) {
  const Event &e = p.event;
  if (e.ves_version != 1)
    return Rejection{"unsupported_version",
                     "Expected VES version 1, got " + std::to_string(e.ves_version), ""};
  if (e.payload_kind == 0) {
    if (e.payload_encrypted)
      return Rejection{"schema_validation: payload_encrypted",
                       "payload_encrypted must be omitted for plaintext events", ""};
    if (!is_zero(e.payload_cipher_hash))
      return Rejection{"schema_validation: payload_cipher_hash",
                       "payload_cipher_hash must be zero for plaintext events", ""};
  } else {
    if (e.payload)
      return Rejection{"schema_validation: payload", "payload must be omitted for encrypted events",
                       ""};
    return Rejection{"schema_validation: payload_encrypted",
                     "pg_ves does not sequence encrypted payloads (VES-ENC-1)", ""};
  }
  if (!is_rfc3339_timestamp(e.created_at))
    return Rejection{"schema_validation: created_at", "created_at must be RFC3339", ""};
  bool ok = false;
  try {
    ok = crypto::constant_time_equal(payload_plain_hash(jcs::canonicalize(*e.payload)),
                                     e.payload_plain_hash);
  } catch (const Error &) {
  }
  if (!ok)
    return Rejection{"invalid_payload_hash", "Payload hash verification failed",
                     "event_payload_hash"};
  return std::nullopt;
}

std::optional<Rejection> check_signature(const Pushed &p, const AgentKey &key) {
  const Event &e = p.event;
  if (!key.found)
    return Rejection{"agent_key_invalid: Agent key not found", "Agent key not found", "event_key"};
  if (!key.revoked_at.empty() && e.created_at >= key.revoked_at)
    return Rejection{"agent_key_invalid: Agent key has been revoked", "Agent key has been revoked",
                     "event_key"};
  if (p.signature_scheme && *p.signature_scheme != 0 && *p.signature_scheme != 1)
    return Rejection{"invalid_signature",
                     "Agent signature scheme " + std::to_string(*p.signature_scheme) +
                         " is not allowed under the legacy profile",
                     "event_signature"};
  if (!crypto::verify_detached(e.agent_signature, signing_hash(e), key.public_key))
    return Rejection{"invalid_signature", "Agent signature verification failed: VerificationFailed",
                     "event_signature"};
  return std::nullopt;
}

bool same_content(const Pushed &a, const Pushed &b) {
  const Event &x = a.event, &y = b.event;
  return x.ves_version == y.ves_version && x.tenant_id == y.tenant_id && x.store_id == y.store_id &&
         x.event_id == y.event_id && x.source_agent_id == y.source_agent_id &&
         x.agent_key_id == y.agent_key_id && x.entity_type == y.entity_type &&
         x.entity_id == y.entity_id && x.event_type == y.event_type &&
         x.created_at == y.created_at && x.payload_kind == y.payload_kind &&
         x.payload_plain_hash == y.payload_plain_hash &&
         x.payload_cipher_hash == y.payload_cipher_hash && x.agent_signature == y.agent_signature &&
         canonical_or_raw(x.payload) == canonical_or_raw(y.payload) &&
         canonical_or_raw(x.payload_encrypted) == canonical_or_raw(y.payload_encrypted) &&
         a.command_id == b.command_id && a.base_version == b.base_version;
}

std::string format_micros(std::int64_t unix_micros, bool zulu) {
  std::int64_t secs = unix_micros / 1000000;
  std::int64_t micros = unix_micros % 1000000;
  if (micros < 0) {
    micros += 1000000;
    secs -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld%s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros), zulu ? "Z" : "+00:00");
  return buf;
}

json::Value receipt_json(const ReceiptFields &r) {
  return json::Value::Object{
      {"sequencerId", format_uuid(r.sequencer_id)},
      {"eventId", format_uuid(r.event_id)},
      {"sequenceNumber", static_cast<double>(r.sequence_number)},
      {"sequencedAt", r.sequenced_at},
      {"receiptHash", crypto::bin2hex(r.receipt_hash)},
      {"signatureAlg", "ed25519"},
      {"sequencerSignature", crypto::bin2hex(r.signature)},
      {"sequencerKeyVersion", static_cast<double>(r.key_version)},
      {"receiptSignatureScheme", 1.0},
  };
}

json::Value rejection_json(const Uuid &event_id, const Rejection &r) {
  return json::Value::Object{
      {"event_id", format_uuid(event_id)}, {"reason", r.reason}, {"message", r.message}};
}

json::Value answer_json(const Uuid &batch_id, std::uint64_t accepted,
                        const std::vector<json::Value> &rejections,
                        const std::vector<json::Value> &receipts,
                        std::optional<std::uint64_t> start, std::optional<std::uint64_t> end,
                        std::uint64_t head) {
  json::Value::Object o{
      {"batchId", format_uuid(batch_id)},
      {"eventsAccepted", static_cast<double>(accepted)},
      {"eventsRejected", static_cast<double>(rejections.size())},
      {"sequenceStart", start ? json::Value(static_cast<double>(*start)) : json::Value()},
      {"sequenceEnd", end ? json::Value(static_cast<double>(*end)) : json::Value()},
      {"headSequence", static_cast<double>(head)},
  };
  if (!rejections.empty()) o.emplace_back("rejections", json::Value::Array(rejections));
  if (!receipts.empty()) o.emplace_back("receipts", json::Value::Array(receipts));
  return o;
}

Hash32 commitment_hash(const Hash32 &stream_id, std::uint64_t start, std::uint64_t end,
                       const Hash32 &merkle_root, const Hash32 &previous_root) {
  static constexpr std::string_view domain = "PGVES_SEQUENCER_COMMITMENT_V1";
  std::vector<std::uint8_t> m(domain.begin(), domain.end());
  m.insert(m.end(), stream_id.begin(), stream_id.end());
  for (std::uint64_t v : {start, end})
    for (int i = 7; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  m.insert(m.end(), merkle_root.begin(), merkle_root.end());
  m.insert(m.end(), previous_root.begin(), previous_root.end());
  return crypto::sha256_32(m);
}

}  // namespace pgves::core::ves::sequencing
