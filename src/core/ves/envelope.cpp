#include "core/ves/envelope.hpp"

#include <cmath>

#include "core/json/canonical_json.hpp"
#include "core/crypto/crypto.hpp"
#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::ves {

namespace {

// The largest integer a JSON number (an IEEE double) carries exactly; beyond
// it two different sequence numbers could read back as one.
constexpr double max_exact_integer = 9007199254740992.0;

bool digits_in_range(std::string_view s, std::size_t pos, std::size_t len, int lo, int hi) {
  int v = 0;
  for (std::size_t i = pos; i < pos + len; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return v >= lo && v <= hi;
}

// RFC 3339 date-time, which the spec requires of created_at and sequenced_at;
// the timestamp is signed as text, so it is checked but never rewritten.
bool is_rfc3339(std::string_view s) {
  if (s.size() < 20 || !digits_in_range(s, 0, 4, 0, 9999) || s[4] != '-' ||
      !digits_in_range(s, 5, 2, 1, 12) || s[7] != '-' || !digits_in_range(s, 8, 2, 1, 31) ||
      (s[10] != 'T' && s[10] != 't') || !digits_in_range(s, 11, 2, 0, 23) || s[13] != ':' ||
      !digits_in_range(s, 14, 2, 0, 59) || s[16] != ':' || !digits_in_range(s, 17, 2, 0, 60))
    return false;
  std::size_t pos = 19;
  if (s[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  if (pos == s.size()) return false;
  if (s[pos] == 'Z' || s[pos] == 'z') return pos + 1 == s.size();
  return (s[pos] == '+' || s[pos] == '-') && s.size() == pos + 6 &&
         digits_in_range(s, pos + 1, 2, 0, 23) && s[pos + 3] == ':' &&
         digits_in_range(s, pos + 4, 2, 0, 59);
}

class Fields {
 public:
  Fields(const json::Value &object, std::string prefix) : prefix_(std::move(prefix)) {
    if (object.kind() != json::Kind::object) fail("", "must be a JSON object");
    object_ = &object;
  }

  [[noreturn]] void fail(std::string_view name, std::string_view why) const {
    const std::string field = prefix_.empty() || name.empty() ? prefix_ + std::string(name)
                                                              : prefix_ + "." + std::string(name);
    throw Error("invalid_envelope",
                (field.empty() ? std::string("envelope") : "envelope field \"" + field + "\"") +
                    " " + std::string(why));
  }

  // JSON null counts as absent for optional fields.
  const json::Value *optional(const char *name) const {
    const json::Value *v = object_->find(name);
    return v && !v->is_null() ? v : nullptr;
  }

  const json::Value &required(const char *name) const {
    const json::Value *v = object_->find(name);
    if (!v) fail(name, "is missing");
    return *v;
  }

  const std::string &string(const char *name) const {
    const json::Value &v = required(name);
    if (v.kind() != json::Kind::string) fail(name, "must be a string");
    return v.as_string();
  }

  std::string timestamp(const char *name) const {
    const std::string &s = string(name);
    if (!is_rfc3339(s)) fail(name, "must be an RFC 3339 timestamp");
    return s;
  }

  std::uint64_t integer(const char *name, double max) const {
    const json::Value &v = required(name);
    if (v.kind() != json::Kind::number) fail(name, "must be a number");
    const double d = v.as_number();
    if (d < 0 || d > max || std::floor(d) != d)
      fail(name, "must be an integer from 0 to " + jcs::format_es_number(max));
    return static_cast<std::uint64_t>(d);
  }

  std::uint32_t u32(const char *name) const {
    return static_cast<std::uint32_t>(integer(name, UINT32_MAX));
  }

  Uuid uuid(const char *name) const {
    try {
      return parse_uuid(string(name));
    } catch (const Error &e) {
      if (e.code() != "invalid_uuid") throw;
      fail(name, "must be a UUID");
    }
  }

  template <std::size_t N>
  std::array<std::uint8_t, N> hex(const char *name) const {
    try {
      return crypto::hex2bin0x_array<N>(string(name));
    } catch (const Error &e) {
      if (e.code() != "invalid_hex") throw;
      fail(name, "must be 0x followed by " + std::to_string(2 * N) + " hex digits");
    }
  }

 private:
  const json::Value *object_ = nullptr;
  std::string prefix_;
};

Receipt receipt_from_json(const json::Value &v) {
  const Fields f(v, "sequencer_receipt");
  Receipt r;
  r.sequencer_id = f.uuid("sequencer_id");
  r.sequence_number = f.integer("sequence_number", max_exact_integer);
  r.sequenced_at = f.timestamp("sequenced_at");
  r.receipt_hash = f.hex<32>("receipt_hash");
  r.signature_alg = f.string("signature_alg");
  const std::string &sig = f.string("sequencer_signature");
  if (!sig.empty() && sig != "0x") {
    try {
      r.sequencer_signature = crypto::hex2bin0x(sig);
    } catch (const Error &) {
      f.fail("sequencer_signature", "must be empty or 0x-hex");
    }
  }
  return r;
}

json::Value receipt_to_json(const Receipt &r) {
  return json::Value::Object{
      {"sequencer_id", format_uuid(r.sequencer_id)},
      {"sequence_number", static_cast<double>(r.sequence_number)},
      {"sequenced_at", r.sequenced_at},
      {"receipt_hash", crypto::bin2hex0x(r.receipt_hash)},
      {"signature_alg", r.signature_alg},
      {"sequencer_signature",
       r.sequencer_signature.empty() ? "" : crypto::bin2hex0x(r.sequencer_signature)},
  };
}

}  // namespace

Event envelope_from_json(const json::Value &envelope) {
  const Fields f(envelope, "");
  Event e;
  e.ves_version = f.u32("ves_version");
  if (e.ves_version != 1) f.fail("ves_version", "must be 1");
  e.event_id = f.uuid("event_id");
  e.tenant_id = f.uuid("tenant_id");
  e.store_id = f.uuid("store_id");
  e.source_agent_id = f.uuid("source_agent_id");
  e.agent_key_id = f.u32("agent_key_id");
  e.entity_type = f.string("entity_type");
  e.entity_id = f.string("entity_id");
  e.event_type = f.string("event_type");
  e.created_at = f.timestamp("created_at");
  e.payload_kind = f.u32("payload_kind");
  if (e.payload_kind == 0) {
    e.payload = f.required("payload");
    if (f.optional("payload_encrypted"))
      f.fail("payload_encrypted", "is not allowed when payload_kind is 0");
  } else if (e.payload_kind == 1) {
    const json::Value *enc = f.optional("payload_encrypted");
    if (!enc || enc->kind() != json::Kind::object)
      f.fail("payload_encrypted", "must be an object when payload_kind is 1");
    if (f.optional("payload")) f.fail("payload", "is not allowed when payload_kind is 1");
    e.payload_encrypted = *enc;
  } else {
    f.fail("payload_kind", "must be 0 or 1");
  }
  e.payload_plain_hash = f.hex<32>("payload_plain_hash");
  e.payload_cipher_hash = f.hex<32>("payload_cipher_hash");
  e.agent_signature = f.hex<64>("agent_signature");
  if (f.optional("sequence_number"))
    e.sequence_number = f.integer("sequence_number", max_exact_integer);
  if (f.optional("sequenced_at")) e.sequenced_at = f.timestamp("sequenced_at");
  if (const json::Value *r = f.optional("sequencer_receipt"))
    e.sequencer_receipt = receipt_from_json(*r);
  return e;
}

Event parse_envelope(std::string_view json_text) {
  return envelope_from_json(json::parse(json_text));
}

json::Value envelope_to_json(const Event &e) {
  json::Value::Object o{
      {"ves_version", static_cast<double>(e.ves_version)},
      {"event_id", format_uuid(e.event_id)},
      {"tenant_id", format_uuid(e.tenant_id)},
      {"store_id", format_uuid(e.store_id)},
      {"source_agent_id", format_uuid(e.source_agent_id)},
      {"agent_key_id", static_cast<double>(e.agent_key_id)},
      {"entity_type", e.entity_type},
      {"entity_id", e.entity_id},
      {"event_type", e.event_type},
      {"created_at", e.created_at},
      {"payload_kind", static_cast<double>(e.payload_kind)},
      {"payload_plain_hash", crypto::bin2hex0x(e.payload_plain_hash)},
      {"payload_cipher_hash", crypto::bin2hex0x(e.payload_cipher_hash)},
      {"agent_signature", crypto::bin2hex0x(e.agent_signature)},
  };
  if (e.payload) o.emplace_back("payload", *e.payload);
  if (e.payload_encrypted) o.emplace_back("payload_encrypted", *e.payload_encrypted);
  if (e.sequence_number) o.emplace_back("sequence_number", static_cast<double>(*e.sequence_number));
  if (e.sequenced_at) o.emplace_back("sequenced_at", *e.sequenced_at);
  if (e.sequencer_receipt)
    o.emplace_back("sequencer_receipt", receipt_to_json(*e.sequencer_receipt));
  return o;
}

std::string export_envelope(const Event &e) { return jcs::canonicalize(envelope_to_json(e)); }

bool is_rfc3339_timestamp(std::string_view text) { return is_rfc3339(text); }

}  // namespace pgves::core::ves
