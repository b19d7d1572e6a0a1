#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/json/canonical_json.hpp"
#include "core/crypto/crypto.hpp"
#include "core/ves/envelope.hpp"
#include "core/base/error.hpp"
#include "core/ves/ves.hpp"
#include "vectors.hpp"

using pgves::core::Error;
namespace crypto = pgves::core::crypto;
namespace jcs = pgves::core::jcs;
namespace json = pgves::core::json;
namespace ves = pgves::core::ves;

namespace {

const json::Value &vectors() {
  static const json::Value v = pgves::test::load_vector_json("ves_v1.json");
  return v;
}

const json::Value::Array &vector_events() { return vectors().find("events")->as_array(); }

std::string field(const json::Value &v, const char *name) { return v.find(name)->as_string(); }

ves::Hash32 hash_field(const json::Value &v, const char *name) {
  return crypto::hex2bin0x_array<32>(field(v, name));
}

std::vector<ves::Hash32> vector_leaves() {
  std::vector<ves::Hash32> leaves;
  for (const auto &item : vector_events()) leaves.push_back(hash_field(item, "leaf_hash"));
  return leaves;
}

}  // namespace

class VesVectorEvent : public testing::TestWithParam<int> {
 protected:
  const json::Value &item() const { return vector_events().at(GetParam()); }
  ves::Event event() const { return ves::envelope_from_json(*item().find("event")); }
};

TEST_P(VesVectorEvent, CanonicalPayloadAndPayloadHash) {
  const ves::Event e = event();
  const std::string canonical = jcs::canonicalize(*e.payload);
  EXPECT_EQ(canonical, field(item(), "canonical_payload"));
  EXPECT_EQ(crypto::bin2hex0x(ves::payload_plain_hash(canonical)),
            field(*item().find("event"), "payload_plain_hash"));
  EXPECT_NO_THROW(ves::check_payload_hashes(e));
}

TEST_P(VesVectorEvent, SigningHash) {
  EXPECT_EQ(crypto::bin2hex0x(ves::signing_hash(event())), field(item(), "event_signing_hash"));
}

TEST_P(VesVectorEvent, SignatureFromSeed) {
  const auto kp = crypto::sign_seed_keypair(crypto::hex2bin(field(item(), "signer_seed_hex")));
  EXPECT_EQ(crypto::bin2hex0x(kp.public_key), field(item(), "signer_public_key"));
  ves::Event e = event();
  const auto published = e.agent_signature;
  EXPECT_TRUE(ves::verify_signature(e, kp.public_key));
  e.agent_signature = {};
  e.payload_plain_hash = {};
  ves::sign_event(e, kp.secret_key);
  EXPECT_EQ(crypto::bin2hex0x(e.agent_signature), crypto::bin2hex0x(published));
  EXPECT_EQ(crypto::bin2hex0x(e.payload_plain_hash),
            field(*item().find("event"), "payload_plain_hash"));
}

TEST_P(VesVectorEvent, TamperedEventFailsVerify) {
  const auto public_key = crypto::hex2bin0x_array<32>(field(item(), "signer_public_key"));
  ves::Event e = event();
  e.entity_id += "x";
  EXPECT_FALSE(ves::verify_signature(e, public_key));
  e = event();
  e.agent_signature[63] ^= 0x40;
  EXPECT_FALSE(ves::verify_signature(e, public_key));
  e = event();
  e.payload = json::Value::Object{{"tampered", true}};
  EXPECT_TRUE(
      ves::verify_signature(e, public_key));  // the signature covers the hash, not the payload
  try {
    ves::check_payload_hashes(e);
    FAIL();
  } catch (const Error &err) {
    EXPECT_EQ(err.code(), "hash_mismatch");
  }
}

TEST_P(VesVectorEvent, LeafAndReceipt) {
  const ves::Event e = event();
  const auto seq = static_cast<std::uint64_t>(item().find("sequence_number")->as_number());
  const auto signing = ves::signing_hash(e);
  EXPECT_EQ(
      crypto::bin2hex0x(ves::leaf_hash(e.tenant_id, e.store_id, seq, signing, e.agent_signature)),
      field(item(), "leaf_hash"));
  EXPECT_EQ(crypto::bin2hex0x(ves::receipt_hash(e.tenant_id, e.store_id, e.event_id, seq, signing)),
            field(item(), "receipt_hash"));
}

TEST_P(VesVectorEvent, InclusionProof) {
  const auto leaves = vector_leaves();
  const auto root = hash_field(*vectors().find("batch"), "events_root");
  const auto proof = ves::inclusion_proof(leaves, GetParam());
  std::vector<std::string> hex;
  for (const auto &h : proof) hex.push_back(crypto::bin2hex0x(h));
  std::vector<std::string> expected;
  for (const auto &h : item().find("inclusion_proof")->as_array())
    expected.push_back(h.as_string());
  EXPECT_EQ(hex, expected);
  EXPECT_TRUE(ves::verify_inclusion(leaves[GetParam()], proof, GetParam(), root));
}

TEST_P(VesVectorEvent, WrongProofFails) {
  const auto leaves = vector_leaves();
  const auto root = hash_field(*vectors().find("batch"), "events_root");
  const std::size_t index = GetParam();
  auto proof = ves::inclusion_proof(leaves, index);
  EXPECT_FALSE(ves::verify_inclusion(leaves[index], proof, index ^ 1, root));
  EXPECT_FALSE(ves::verify_inclusion(leaves[index], proof, index + 4, root));
  EXPECT_FALSE(ves::verify_inclusion(leaves[(index + 1) % leaves.size()], proof, index, root));
  EXPECT_FALSE(ves::verify_inclusion(leaves[index], {proof[0]}, index, root));
  proof[1][0] ^= 1;
  EXPECT_FALSE(ves::verify_inclusion(leaves[index], proof, index, root));
}

TEST_P(VesVectorEvent, EnvelopeExportRoundTrips) {
  const ves::Event e = event();
  const std::string exported = ves::export_envelope(e);
  EXPECT_EQ(exported, jcs::canonicalize(*item().find("event")));
  EXPECT_EQ(ves::export_envelope(ves::parse_envelope(exported)), exported);
}

INSTANTIATE_TEST_SUITE_P(VesV1, VesVectorEvent, testing::Range(0, 3));

TEST(VesV1, VectorFileHasThreeEvents) { EXPECT_EQ(vector_events().size(), 3u); }

TEST(VesV1, PadLeafAndRoot) {
  const json::Value &batch = *vectors().find("batch");
  EXPECT_EQ(crypto::bin2hex0x(ves::pad_leaf()), field(batch, "pad_leaf"));
  EXPECT_EQ(crypto::bin2hex0x(ves::merkle_root(vector_leaves())), field(batch, "events_root"));
  EXPECT_EQ(batch.find("sequence_start")->as_number(), 0);
  EXPECT_EQ(batch.find("sequence_end")->as_number(), 2);
}

TEST(VesV1, CrossPlatformSigningHash) {
  const json::Value &cross = *vectors().find("cross_platform");
  const json::Value &f = *cross.find("fields");
  ves::Event e;
  e.ves_version = static_cast<std::uint32_t>(f.find("ves_version")->as_number());
  e.tenant_id = ves::parse_uuid(field(f, "tenant_id"));
  e.store_id = ves::parse_uuid(field(f, "store_id"));
  e.event_id = ves::parse_uuid(field(f, "event_id"));
  e.source_agent_id = ves::parse_uuid(field(f, "source_agent_id"));
  e.agent_key_id = static_cast<std::uint32_t>(f.find("agent_key_id")->as_number());
  e.entity_type = field(f, "entity_type");
  e.entity_id = field(f, "entity_id");
  e.event_type = field(f, "event_type");
  e.created_at = field(f, "created_at");
  e.payload_kind = static_cast<std::uint32_t>(f.find("payload_kind")->as_number());
  e.payload_plain_hash = hash_field(f, "payload_plain_hash");
  e.payload_cipher_hash = hash_field(f, "payload_cipher_hash");
  EXPECT_EQ(crypto::bin2hex0x(ves::signing_hash(e)), field(cross, "event_signing_hash"));
}

TEST(VesMerkle, EdgeCases) {
  EXPECT_EQ(ves::merkle_root({}), ves::Hash32{});
  const ves::Hash32 a = crypto::sha256_32(std::string("a"));
  EXPECT_EQ(ves::merkle_root({a}), a);
  EXPECT_TRUE(ves::inclusion_proof({a}, 0).empty());
  EXPECT_TRUE(ves::verify_inclusion(a, {}, 0, a));
  EXPECT_FALSE(ves::verify_inclusion(a, {}, 1, a));
  EXPECT_THROW(ves::inclusion_proof({a}, 1), Error);
}

TEST(VesMerkle, MatchesExplicitPaddingForEverySize) {
  // Reference: pad the leaf level to a power of two, then hash pairs upward.
  const auto reference_root = [](std::vector<ves::Hash32> level) {
    std::size_t m = 1;
    while (m < level.size()) m *= 2;
    level.resize(m, ves::pad_leaf());
    while (level.size() > 1) {
      std::vector<ves::Hash32> up;
      for (std::size_t i = 0; i < level.size(); i += 2)
        up.push_back(ves::node_hash(level[i], level[i + 1]));
      level = up;
    }
    return level[0];
  };
  std::vector<ves::Hash32> leaves;
  for (int n = 1; n <= 17; ++n) {
    leaves.push_back(crypto::sha256_32(std::to_string(n)));
    const auto root = ves::merkle_root(leaves);
    EXPECT_EQ(root, reference_root(leaves)) << n;
    for (std::size_t i = 0; i < leaves.size(); ++i)
      EXPECT_TRUE(ves::verify_inclusion(leaves[i], ves::inclusion_proof(leaves, i), i, root))
          << n << " " << i;
  }
}

TEST(VesStream, StreamIdBindsTenantAndStoreInOrder) {
  const auto t = ves::parse_uuid("00000000-0000-0000-0000-000000000001");
  const auto s = ves::parse_uuid("00000000-0000-0000-0000-000000000002");
  std::string preimage = "VES_STREAM_V1";
  preimage.append(reinterpret_cast<const char *>(t.data()), 16);
  preimage.append(reinterpret_cast<const char *>(s.data()), 16);
  EXPECT_EQ(ves::stream_id(t, s), crypto::sha256_32(preimage));
  EXPECT_NE(ves::stream_id(t, s), ves::stream_id(s, t));
}

TEST(VesUuid, ParseAndFormat) {
  const auto id = ves::parse_uuid("FB47ED76-41c7-4355-8025-9544C6858F8B");
  EXPECT_EQ(id[0], 0xfb);
  EXPECT_EQ(id[15], 0x8b);
  EXPECT_EQ(ves::format_uuid(id), "fb47ed76-41c7-4355-8025-9544c6858f8b");
  for (const char *bad :
       {"", "fb47ed7641c743558025954 4c6858f8b", "fb47ed76-41c7-4355-8025-9544c6858f8",
        "fb47ed76-41c7-4355-8025-9544c6858f8bb", "fb47ed76x41c7-4355-8025-9544c6858f8b",
        "gb47ed76-41c7-4355-8025-9544c6858f8b", "{fb47ed76-41c7-4355-8025-9544c6858f8b}"})
    EXPECT_THROW(ves::parse_uuid(bad), Error) << bad;
}
