// pg_ves as the sequencer (src/core/ves/sequencing.cpp) and the ves_postgres
// adapter: StateSet's ingest rules, checked on an envelope signed by
// test/mock/sequencer.py's own code.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/ves_postgres.hpp"
#include "core/ves/sequencing.hpp"
#include "core/ves/ves.hpp"

namespace core = pgves::core;
namespace json = pgves::core::json;
namespace seq = pgves::core::ves::sequencing;
namespace ves = pgves::core::ves;

namespace {

// Signed by the mock's sign_envelope with seed 00 01 .. 1f (as in
// test_adapter_ves_sequencer.cpp).
const std::string envelope =
    R"({"ves_version":1,"event_id":"0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6",)"
    R"("tenant_id":"11111111-2222-4333-8444-555555555555",)"
    R"("store_id":"66666666-7777-4888-9999-aaaaaaaaaaaa",)"
    R"("source_agent_id":"bbbbbbbb-cccc-4ddd-8eee-ffffffffffff","agent_key_id":1,)"
    R"("entity_type":"product","entity_id":"sku-1","event_type":"product.updated",)"
    R"("created_at":"2026-11-30T07:35:41.291Z","payload_kind":0,)"
    R"("payload":{"price":12.5,"name":"Mug"},)"
    R"("payload_plain_hash":"0xc3d25857f71a6d02bad727a780a134d0096c86f65e80bd5aa4c120215cf9b809",)"
    R"("payload_cipher_hash":"0x0000000000000000000000000000000000000000000000000000000000000000",)"
    R"("agent_signature":"0xa6b70225d6525bf6d2575a1ebfae0e98b50b91aa74110da2451329eac8efd4f6e47a2cdfa975fc4dd5c8663b857a1bb42b396841ddf9974aa39d992643295d07"})";
const ves::Uuid agent = ves::parse_uuid("bbbbbbbb-cccc-4ddd-8eee-ffffffffffff");

seq::AgentKey key_of_seed() {
  std::vector<std::uint8_t> seed(32);
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<std::uint8_t>(i);
  seq::AgentKey k;
  k.found = true;
  k.public_key = core::crypto::sign_seed_keypair(seed).public_key;
  return k;
}

std::vector<seq::Pushed> one(const std::string &env) {
  return seq::read_request(agent, json::parse("[" + env + "]"));
}

std::string with(const std::string &field_json) {
  return envelope.substr(0, envelope.size() - 1) + "," + field_json + "}";
}

std::string refusal(const std::string &body, const ves::Uuid &a = agent) {
  try {
    seq::read_request(a, json::parse(body));
  } catch (const seq::RequestError &e) {
    return e.code() + ": " + e.what();
  }
  return "accepted";
}

}  // namespace

TEST(Sequencing, AValidEnvelopePassesEveryCheck) {
  const auto p = one(envelope);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_FALSE(seq::check_envelope(p[0]));
  EXPECT_FALSE(seq::check_signature(p[0], key_of_seed()));
}

TEST(Sequencing, HexWithoutPrefixAndTheIngestBodyAreRead) {
  std::string bare = envelope;
  for (std::size_t at = bare.find("\"0x"); at != std::string::npos; at = bare.find("\"0x"))
    bare.erase(at + 1, 2);
  const auto p = one(bare);
  EXPECT_FALSE(seq::check_signature(p[0], key_of_seed()));
  const std::string body =
      R"({"agentId":"bbbbbbbb-cccc-4ddd-8eee-ffffffffffff","events":[)" + envelope + "]}";
  EXPECT_EQ(seq::read_request(agent, json::parse(body)).size(), 1u);
}

TEST(Sequencing, RejectionsInTheServersWords) {
  auto reason = [](const std::string &env) {
    const auto p = one(env);
    auto r = seq::check_envelope(p[0]);
    if (!r) r = seq::check_signature(p[0], key_of_seed());
    return r ? r->reason + " | " + r->message + " | " + r->alert_kind : std::string("ok");
  };
  std::string v2 = envelope;
  v2.replace(v2.find("\"ves_version\":1"), 15, "\"ves_version\":2");
  EXPECT_EQ(reason(v2), "unsupported_version | Expected VES version 1, got 2 | ");
  EXPECT_EQ(reason(with(R"("payload_encrypted":{"c":1})")),
            "schema_validation: payload_encrypted | payload_encrypted must be omitted for "
            "plaintext events | ");
  std::string tampered = envelope;
  tampered.replace(tampered.find("12.5"), 4, "13.5");
  EXPECT_EQ(reason(tampered),
            "invalid_payload_hash | Payload hash verification failed | event_payload_hash");
  seq::AgentKey none;
  EXPECT_EQ(seq::check_signature(one(envelope)[0], none)->reason,
            "agent_key_invalid: Agent key not found");
  seq::AgentKey revoked = key_of_seed();
  revoked.revoked_at = "2026-11-01T00:00:00.000Z";
  EXPECT_EQ(seq::check_signature(one(envelope)[0], revoked)->reason,
            "agent_key_invalid: Agent key has been revoked");
  revoked.revoked_at = "2026-12-01T00:00:00.000Z";
  EXPECT_FALSE(seq::check_signature(one(envelope)[0], revoked));
  EXPECT_EQ(reason(with(R"("agent_signature_scheme":7)")).substr(0, 17), "invalid_signature");
}

TEST(Sequencing, WholeRequestRefusals) {
  EXPECT_EQ(refusal("[]"), "invalid_batch: events must not be empty");
  EXPECT_EQ(refusal("{}"), "invalid_body: missing field `agentId`");
  EXPECT_EQ(refusal("[" + envelope + "]", ves::parse_uuid("00000000-0000-4000-8000-000000000001")),
            "invalid_batch: event source_agent_id must match request agent_id");
  std::string other_store = envelope;
  other_store.replace(other_store.find("66666666"), 8, "77777777");
  EXPECT_EQ(refusal("[" + envelope + "," + other_store + "]"),
            "invalid_batch: All events in a batch must share the same tenantId and storeId");
  std::string many = "[";
  for (int i = 0; i < 1001; ++i) many += (i ? "," : "") + envelope;
  EXPECT_EQ(refusal(many + "]"), "too_large: Batch exceeds max_events_per_batch (1001 > 1000)");
  EXPECT_EQ(refusal("[" + with(R"("base_version":-1)") + "]").substr(0, 39),
            "invalid_body: events[0].base_version: i");
}

TEST(Sequencing, ReplayComparisonCoversCommandAndBaseVersion) {
  const auto a = one(envelope)[0];
  std::string reordered = envelope;
  reordered.replace(reordered.find(R"({"price":12.5,"name":"Mug"})"), 27,
                    R"({"name":"Mug","price":12.50})");
  EXPECT_TRUE(seq::same_content(a, one(reordered)[0]));
  EXPECT_FALSE(seq::same_content(a, one(with(R"("base_version":0)"))[0]));
  EXPECT_FALSE(
      seq::same_content(a, one(with(R"("command_id":"00000000-0000-4000-8000-000000000001")"))[0]));
}

TEST(Sequencing, TimesAndCommitmentBytes) {
  EXPECT_EQ(seq::format_micros(1764488141291095, false), "2025-11-30T07:35:41.291095+00:00");
  EXPECT_EQ(seq::format_micros(1764488141291095, true), "2025-11-30T07:35:41.291095Z");
  const ves::Hash32 zero{};
  ves::Hash32 one_byte{};
  one_byte[0] = 1;
  const ves::Hash32 s = ves::stream_id(agent, agent);
  EXPECT_NE(seq::commitment_hash(s, 1, 2, zero, zero), seq::commitment_hash(s, 1, 3, zero, zero));
  EXPECT_NE(seq::commitment_hash(s, 1, 2, zero, zero),
            seq::commitment_hash(s, 1, 2, zero, one_byte));
}

TEST(VesPostgres, OneRequestPerStreamAndAgentAndRemoteRefusalsArePermanent) {
  const core::Adapter &a = *core::find_adapter("ves_postgres");
  EXPECT_TRUE(a.over_libpq());
  std::string other_store = envelope;
  other_store.replace(other_store.find("66666666"), 8, "77777777");
  std::vector<core::OutboxRow> rows(3);
  rows[0].body = envelope;
  rows[1].body = other_store;
  rows[2].body = envelope;
  const std::string url = "postgresql://b/shop", secret;
  const std::vector<std::pair<std::string, std::string>> headers;
  const auto requests = a.build_requests({url, secret, headers}, rows, 0);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(json::parse(requests[0].http.body).find("events")->as_array().size(), 2u);
  core::Answer refused{false, core::ves_postgres_refused, "", "VE061: events must not be empty",
                       ""};
  const auto v = a.classify_rows({url, secret, headers}, refused, rows, 0);
  EXPECT_EQ(v[0].verdict, core::Verdict::permanent);
  EXPECT_EQ(v[0].reason, "the remote pg_ves refused the push: VE061: events must not be empty");
  core::Answer down{true, 0, "", "", ""};
  EXPECT_EQ(a.classify_rows({url, secret, headers}, down, rows, 0)[0].verdict,
            core::Verdict::retry);
  EXPECT_THROW(a.validate_url("postgresql://u:secret@b/shop"), core::OptionError);
  EXPECT_THROW(a.validate_url("https://b/shop"), core::OptionError);
  EXPECT_NO_THROW(a.validate_url("postgresql://b/shop"));
}
