#include <gtest/gtest.h>

#include <string>

#include "core/json/canonical_json.hpp"
#include "core/ves/envelope.hpp"
#include "core/base/error.hpp"
#include "vectors.hpp"

using pgves::core::Error;
namespace jcs = pgves::core::jcs;
namespace json = pgves::core::json;
namespace ves = pgves::core::ves;

namespace {

json::Value::Object first_vector_envelope() {
  const json::Value all = pgves::test::load_vector_json("ves_v1.json");
  return all.find("events")->as_array()[0].find("event")->as_object();
}

json::Value::Object with(json::Value::Object o, const std::string &key, json::Value value) {
  for (auto &m : o)
    if (m.first == key) {
      m.second = std::move(value);
      return o;
    }
  o.emplace_back(key, std::move(value));
  return o;
}

json::Value::Object without(json::Value::Object o, const std::string &key) {
  for (auto it = o.begin(); it != o.end(); ++it)
    if (it->first == key) {
      o.erase(it);
      break;
    }
  return o;
}

std::string rejection(const json::Value &envelope) {
  try {
    ves::envelope_from_json(envelope);
  } catch (const Error &e) {
    return e.code() + ": " + e.what();
  }
  return "accepted";
}

}  // namespace

TEST(Envelope, RejectsBadFields) {
  const auto base = first_vector_envelope();
  const std::pair<const char *, json::Value> bad[] = {
      {"ves_version", 2.0},
      {"ves_version", "1"},
      {"event_id", "not-a-uuid"},
      {"tenant_id", 1.0},
      {"agent_key_id", -1.0},
      {"agent_key_id", 1.5},
      {"agent_key_id", 4294967296.0},
      {"entity_type", nullptr},
      {"created_at", "2026-11-01 12:00:00"},
      {"created_at", "2026-13-01T12:00:00Z"},
      {"created_at", "2026-11-01T12:00:00.Z"},
      {"created_at", "2026-11-01T12:00:00+0100"},
      {"payload_kind", 2.0},
      {"payload_kind", 1.0},
      {"payload_plain_hash", "8ddca36cba5e298a087cadff58906633ef78d185529454290a05771ea5df2944"},
      {"payload_plain_hash", "0x8ddc"},
      {"payload_cipher_hash", "0xzz00000000000000000000000000000000000000000000000000000000000000"},
      {"agent_signature", "0x00"},
      {"sequence_number", 9007199254740994.0},
      {"sequencer_receipt", "x"},
      {"payload_encrypted", json::Value::Object{}},
  };
  for (const auto &[key, value] : bad) {
    const std::string r = rejection(with(base, key, value));
    EXPECT_EQ(r.rfind("invalid_envelope: ", 0), 0u) << key << " -> " << r;
    EXPECT_NE(r.find(key), std::string::npos) << r;
  }
  for (const char *key : {"event_id", "payload", "agent_signature", "created_at"})
    EXPECT_NE(rejection(without(base, key)).find("is missing"), std::string::npos) << key;
  EXPECT_EQ(rejection(json::Value::Array{}).rfind("invalid_envelope", 0), 0u);
}

TEST(Envelope, AcceptsOptionalAndUnknownFields) {
  auto o = first_vector_envelope();
  o.emplace_back("sequence_number", 27.0);
  o.emplace_back("sequenced_at", "2025-12-20T18:35:10.456+01:00");
  o.emplace_back("x_unsigned_extra", "ignored");
  o.emplace_back("sequencer_receipt",
                 json::Value::Object{{"sequencer_id", "22222222-2222-2222-2222-222222222222"},
                                     {"sequence_number", 27.0},
                                     {"sequenced_at", "2025-12-20T18:35:10.456Z"},
                                     {"receipt_hash", "0x" + std::string(64, 'a')},
                                     {"signature_alg", "ed25519"},
                                     {"sequencer_signature", "0x" + std::string(128, 'b')}});
  const ves::Event e = ves::envelope_from_json(o);
  ASSERT_TRUE(e.sequence_number && e.sequenced_at && e.sequencer_receipt);
  EXPECT_EQ(*e.sequence_number, 27u);
  EXPECT_EQ(e.sequencer_receipt->sequencer_signature.size(), 64u);
  const std::string exported = ves::export_envelope(e);
  EXPECT_EQ(exported.find("x_unsigned_extra"), std::string::npos);
  EXPECT_EQ(ves::export_envelope(ves::parse_envelope(exported)), exported);
  EXPECT_EQ(jcs::canonicalize(without(o, "x_unsigned_extra")), exported);
}

TEST(Envelope, UnsignedReceiptHasEmptySignature) {
  auto o = first_vector_envelope();
  o.emplace_back("sequencer_receipt",
                 json::Value::Object{{"sequencer_id", "22222222-2222-2222-2222-222222222222"},
                                     {"sequence_number", 0.0},
                                     {"sequenced_at", "2025-12-20T18:35:10Z"},
                                     {"receipt_hash", "0x" + std::string(64, '0')},
                                     {"signature_alg", "none"},
                                     {"sequencer_signature", ""}});
  const ves::Event e = ves::envelope_from_json(o);
  EXPECT_TRUE(e.sequencer_receipt->sequencer_signature.empty());
  EXPECT_NE(ves::export_envelope(e).find("\"sequencer_signature\":\"\""), std::string::npos);
}

TEST(Envelope, EncryptedPayloadIsCarriedThrough) {
  auto o = without(first_vector_envelope(), "payload");
  const json::Value encrypted =
      json::parse(R"({"enc_version":1,"aead":"AES-256-GCM","nonce_b64u":"dGVzdG5vbmNl",
        "ciphertext_b64u":"Y2lwaGVydGV4dA","tag_b64u":"YXV0aHRhZw","recipients":[]})");
  o = with(o, "payload_kind", 1.0);
  o = with(o, "payload_encrypted", encrypted);
  const ves::Event e = ves::envelope_from_json(o);
  EXPECT_FALSE(e.payload);
  EXPECT_EQ(*e.payload_encrypted, encrypted);
  EXPECT_NO_THROW(ves::check_payload_hashes(e));
  EXPECT_EQ(ves::export_envelope(e), jcs::canonicalize(o));
  EXPECT_NE(rejection(with(o, "payload", json::Value::Object{})).find("payload"),
            std::string::npos);
}

TEST(Envelope, ParseEnvelopePropagatesJsonErrors) {
  try {
    ves::parse_envelope(R"({"ves_version":1,"ves_version":1})");
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), "duplicate_key");
  }
}
