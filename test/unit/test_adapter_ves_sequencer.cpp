#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/base/error.hpp"
#include "core/crypto/crypto.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/ves_sequencer.hpp"
#include "core/ves/envelope.hpp"
#include "core/ves/ves.hpp"

namespace core = pgves::core;
namespace crypto = pgves::core::crypto;
namespace json = pgves::core::json;
namespace sequencer = pgves::core::sequencer;
namespace ves = pgves::core::ves;
using core::Verdict;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// An envelope signed by test/mock/sequencer.py's own implementation
// (sign_envelope with seed 00 01 .. 1f), and the values it computes for it.
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
const std::string event_id = "0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
// The mock's receipt_hash(tenant, store, event, 5, signing_hash(envelope)).
const std::string receipt_hash_5 =
    "8e1a75a874fee41d16d095e8dd269790fd3c33652d03b67b8e9ee21e8f12b0b2";
// ed25519_sign(seed 07 x 32, that hash), and the seed's public key.
const std::string receipt_signature_5 =
    "8783109a640978b2d150a8f8a64cc99f9e499aa76bade854da126f077589926d"
    "0513c84f224e1a6226016b1f80eb36fb4b9fe8239d388aefda4d86517f531e0a";
const std::string sequencer_key =
    "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
constexpr std::int64_t now_ms = 1700000000123;

const core::Adapter &adapter() { return *core::find_adapter("ves_sequencer"); }

const Headers no_headers;

std::string receipt(const std::string &hash = receipt_hash_5,
                    const std::string &signature = receipt_signature_5, int seq = 5) {
  return R"({"sequencerId":"9b2f8c1e-0000-4000-8000-000000000001","eventId":")" + event_id +
         R"(","sequenceNumber":)" + std::to_string(seq) +
         R"(,"sequencedAt":"2026-11-30T07:35:41.291095+00:00","receiptHash":")" + hash +
         R"(","signatureAlg":"ed25519","sequencerSignature":")" + signature +
         R"(","sequencerKeyVersion":0,"receiptSignatureScheme":1})";
}

std::string accepted(const std::string &receipt_json) {
  return R"({"batchId":"1b2f8c1e-0000-4000-8000-000000000002","eventsAccepted":1,)"
         R"("eventsRejected":0,"sequenceStart":5,"sequenceEnd":5,"headSequence":5,"receipts":[)" +
         receipt_json + "]}";
}

std::string rejected(const std::string &reason, const std::string &message) {
  return R"({"batchId":"1b2f8c1e-0000-4000-8000-000000000002","eventsAccepted":0,)"
         R"("eventsRejected":1,"sequenceStart":null,"sequenceEnd":null,"headSequence":4,)"
         R"("rejections":[{"event_id":")" +
         event_id + R"(","reason":")" + reason + R"(","message":")" + message + "\"}]}";
}

core::RowVerdict classify(const std::string &body, long status = 200,
                          const std::string &options = "{}", std::string_view retry_after = "") {
  const json::Value opts = json::parse(options);
  const std::string url = "http://127.0.0.1:1/", secret = "ss_key";
  core::Answer a;
  a.status = status;
  a.body = body;
  a.retry_after = retry_after;
  const core::OutboxRow row{1, event_id, envelope, 1};
  auto out = adapter().classify_rows({url, secret, no_headers, &opts}, a, {row}, now_ms);
  EXPECT_EQ(out.size(), 1u);
  return out.at(0);
}

std::string option_error(const std::string &options) {
  try {
    adapter().validate_options(json::parse(options));
  } catch (const core::OptionError &e) {
    return e.code() + ": " + e.what();
  }
  return "";
}

std::string header(const core::HttpRequest &r, const std::string &name) {
  for (const auto &h : r.headers)
    if (h.first == name) return h.second;
  return "<none>";
}

}  // namespace

TEST(VesSequencer, IsRegisteredWithItsOwnOptions) {
  ASSERT_NE(core::find_adapter("ves_sequencer"), nullptr);
  EXPECT_EQ(adapter().option_names(),
            (std::vector<std::string_view>{"auth", "sequencer_public_key", "base_version",
                                           "store_id", "pull", "pull_interval_ms", "pull_batch"}));
  EXPECT_EQ(adapter().max_rows_per_request(), 100u);
}

TEST(VesSequencer, ValidatesOptions) {
  EXPECT_EQ(option_error(R"({"secret":"ss_abc","auth":"api_key"})"), "");
  EXPECT_EQ(option_error(R"({"secret":"tok","auth":"bearer","sequencer_public_key":")" +
                         sequencer_key + "\"}"),
            "");
  EXPECT_EQ(option_error(R"({"auth":"basic"})"),
            "invalid_option: auth must be \"api_key\" or \"bearer\"");
  EXPECT_EQ(option_error(R"({"sequencer_public_key":"abcd"})"),
            "invalid_option: sequencer_public_key must be 64 hex characters (an Ed25519 public "
            "key)");
  EXPECT_EQ(option_error(R"({"sequencer_public_key":")" + std::string(64, 'g') + "\"}"),
            "invalid_option: sequencer_public_key must be 64 hex characters (an Ed25519 public "
            "key)");
  EXPECT_EQ(option_error(R"({"secret":"ss key"})"),
            "invalid_option: the sequencer credential contains a space or control character");
  EXPECT_EQ(option_error(R"({"secret":""})"),
            "invalid_option: the sequencer credential must not be empty");
  EXPECT_EQ(option_error(R"({"secret":"ss_a","headers":{"AUTHORIZATION":"Basic x"}})"),
            "invalid_header: a ves_sequencer destination sends its credential itself; header "
            "AUTHORIZATION is not allowed");
  EXPECT_EQ(option_error(R"({"headers":{"X-Shop":"1"}})"), "");
  EXPECT_EQ(option_error(R"({"base_version":true})"), "");
  EXPECT_EQ(option_error(R"({"base_version":"yes"})"),
            "invalid_option: base_version must be true or false");
}

TEST(VesSequencer, BuildsTheIngestRequestWithApiKeyOrBearer) {
  const std::string url = "http://127.0.0.1:9/", secret = "ss_key";
  const core::OutboxRow row{1, event_id, envelope, 1};
  const Headers extra = {{"X-Trace", "1"}};
  const json::Value api = json::parse("{}");
  auto reqs = adapter().build_requests({url, secret, extra, &api}, {row}, now_ms);
  ASSERT_EQ(reqs.size(), 1u);
  const core::HttpRequest &r = reqs[0].http;
  EXPECT_EQ(r.url, "http://127.0.0.1:9/api/v1/ves/events/ingest");
  EXPECT_EQ(header(r, "authorization"), "ApiKey ss_key");
  EXPECT_EQ(header(r, "content-type"), "application/json");
  EXPECT_EQ(header(r, "X-Trace"), "1");
  const json::Value body = json::parse(r.body);
  EXPECT_EQ(body.find("agentId")->as_string(), "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff");
  ASSERT_EQ(body.find("events")->as_array().size(), 1u);
  // The envelope exactly as exported, and no base_version.
  EXPECT_EQ(body.find("events")->as_array()[0], json::parse(envelope));
  EXPECT_EQ(r.body.find("base_version"), std::string::npos);

  const json::Value bearer = json::parse(R"({"auth":"bearer"})");
  auto b = adapter().build_requests({"http://h", "tok", no_headers, &bearer}, {row}, now_ms);
  EXPECT_EQ(b[0].http.url, "http://h/api/v1/ves/events/ingest");
  EXPECT_EQ(header(b[0].http, "authorization"), "Bearer tok");
  auto none = adapter().build_requests({"http://h", "", no_headers, nullptr}, {row}, now_ms);
  EXPECT_EQ(header(none[0].http, "authorization"), "<none>");
}

TEST(VesSequencer, ReceiptHashMatchesTheMocksImplementation) {
  const ves::Event e = ves::parse_envelope(envelope);
  EXPECT_EQ(crypto::bin2hex(
                ves::receipt_hash(e.tenant_id, e.store_id, e.event_id, 5, ves::signing_hash(e))),
            receipt_hash_5);
}

TEST(VesSequencer, AReceiptThatVerifiesIsSuccessAndKept) {
  core::RowVerdict v = classify(accepted(receipt()));
  EXPECT_EQ(v.verdict, Verdict::success) << v.reason;
  EXPECT_FALSE(v.receipt_signature_verified);  // no sequencer_public_key given
  const json::Value kept = json::parse(v.receipt);
  EXPECT_EQ(kept.find("sequenceNumber")->as_number(), 5);
  EXPECT_EQ(kept.find("receiptHash")->as_string(), receipt_hash_5);

  v = classify(accepted(receipt()), 200, R"({"sequencer_public_key":")" + sequencer_key + "\"}");
  EXPECT_EQ(v.verdict, Verdict::success) << v.reason;
  EXPECT_TRUE(v.receipt_signature_verified);
}

TEST(VesSequencer, AReceiptThatDoesNotVerifyIsPermanent) {
  std::string flipped = receipt_hash_5;
  flipped[0] = flipped[0] == '8' ? '9' : '8';
  core::RowVerdict v = classify(accepted(receipt(flipped)));
  EXPECT_EQ(v.verdict, Verdict::permanent);
  EXPECT_EQ(v.reason,
            "receipt does not verify: receiptHash is not the VES v1 receipt hash of this event "
            "and sequence number");
  EXPECT_TRUE(v.receipt.empty());
  // The right hash claimed for another sequence number.
  v = classify(accepted(receipt(receipt_hash_5, receipt_signature_5, 6)));
  EXPECT_EQ(v.verdict, Verdict::permanent);
  // A signature by another key, or none, when the sequencer's key is known.
  const std::string opts = R"({"sequencer_public_key":")" + sequencer_key + "\"}";
  std::string bad_sig = receipt_signature_5;
  bad_sig[10] = bad_sig[10] == '0' ? '1' : '0';
  v = classify(accepted(receipt(receipt_hash_5, bad_sig)), 200, opts);
  EXPECT_EQ(v.verdict, Verdict::permanent);
  EXPECT_EQ(v.reason,
            "receipt does not verify: sequencerSignature does not verify under "
            "sequencer_public_key");
  v = classify(accepted(receipt(receipt_hash_5, "")), 200, opts);
  EXPECT_EQ(v.reason, "receipt does not verify: the receipt carries no Ed25519 sequencerSignature");
  // Without the key an unsigned receipt is fine.
  EXPECT_EQ(classify(accepted(receipt(receipt_hash_5, ""))).verdict, Verdict::success);
}

TEST(VesSequencer, RejectionsArePermanentWithTheReason) {
  for (const char *reason : {"duplicate_event_id", "invalid_payload_hash", "invalid_signature",
                             "agent_key_invalid: Agent key not found",
                             "schema_validation: created_at", "unsupported_version"}) {
    core::RowVerdict v = classify(rejected(reason, "why"));
    EXPECT_EQ(v.verdict, Verdict::permanent) << reason;
    EXPECT_EQ(v.reason, std::string("rejected by the sequencer: ") + reason + " (why)");
  }
  // A version conflict is for a person to decide, not a dead letter.
  core::RowVerdict conflict =
      classify(rejected("version_conflict: expected 1, actual 2", "Version conflict"));
  EXPECT_EQ(conflict.verdict, Verdict::conflict);
  EXPECT_EQ(conflict.reason,
            "version conflict at the sequencer: version_conflict: expected 1, actual 2 (Version "
            "conflict)");
  EXPECT_EQ(classify(R"({"eventsAccepted":0})").reason,
            "the sequencer's answer has neither a receipt nor a rejection for the event");
  EXPECT_EQ(classify("{\"receipts\":[").verdict, Verdict::permanent);
}

TEST(VesSequencer, ClassifiesWholeRequestAnswers) {
  core::RowVerdict v = classify(R"({"error":"Invalid API key","code":"invalid_api_key"})", 401);
  EXPECT_EQ(v.verdict, Verdict::permanent);
  EXPECT_EQ(v.reason, "unauthorized: HTTP 401 invalid_api_key (Invalid API key)");
  v = classify(
      R"({"error":{"code":"INSUFFICIENT_PERMISSIONS","numeric_code":1005,"message":"Store access denied"}})",
      403);
  EXPECT_EQ(v.reason, "unauthorized: HTTP 403 INSUFFICIENT_PERMISSIONS (Store access denied)");
  v = classify(R"({"error":"Rate limit exceeded","code":"rate_limited"})", 429, "{}", "7");
  EXPECT_EQ(v.verdict, Verdict::retry);
  EXPECT_EQ(v.retry_after_ms, 7000);
  EXPECT_EQ(classify("busy", 503).verdict, Verdict::retry);
  for (long s : {400L, 413L, 422L}) {
    v = classify("Failed to deserialize the JSON body", s);
    EXPECT_EQ(v.verdict, Verdict::permanent) << s;
    EXPECT_EQ(v.reason, "HTTP " + std::to_string(s) + " Failed to deserialize the JSON body");
  }
  core::Answer transport;
  transport.transport_error = true;
  const core::OutboxRow row{1, event_id, envelope, 1};
  EXPECT_EQ(adapter().classify_rows({"u", "", no_headers}, transport, {row}, now_ms)[0].verdict,
            Verdict::retry);
}

namespace {

// The envelope with another event id, tenant or agent (the signature no
// longer matters: build_requests only reads these fields).
std::string variant(const std::string &id, const std::string &tenant = "",
                    const std::string &agent = "") {
  std::string out = envelope;
  auto swap = [&](const std::string &from, const std::string &to) {
    if (!to.empty()) out.replace(out.find(from), from.size(), to);
  };
  swap(event_id, id);
  swap("11111111-2222-4333-8444-555555555555", tenant);
  swap("bbbbbbbb-cccc-4ddd-8eee-ffffffffffff", agent);
  return out;
}

}  // namespace

TEST(VesSequencer, BatchesRowsOfOneStreamAndAgentInOrder) {
  const std::string ids[] = {
      "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
      "00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"};
  const std::string other_tenant = "22222222-2222-4333-8444-555555555555";
  const std::string other_agent = "cccccccc-cccc-4ddd-8eee-ffffffffffff";
  const std::vector<std::string> bodies = {variant(ids[0]), variant(ids[1], other_tenant),
                                           variant(ids[2]), variant(ids[3], "", other_agent)};
  std::vector<core::OutboxRow> rows;
  for (std::size_t i = 0; i < bodies.size(); ++i)
    rows.push_back(core::OutboxRow{static_cast<std::int64_t>(i + 1), ids[i], bodies[i], 1});
  const json::Value opts = json::parse("{}");
  auto reqs = adapter().build_requests({"http://h", "ss_k", no_headers, &opts}, rows, now_ms);
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].rows, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(reqs[1].rows, (std::vector<std::size_t>{1}));
  EXPECT_EQ(reqs[2].rows, (std::vector<std::size_t>{3}));
  const json::Value first = json::parse(reqs[0].http.body);
  ASSERT_EQ(first.find("events")->as_array().size(), 2u);
  EXPECT_EQ(first.find("events")->as_array()[1].find("event_id")->as_string(), ids[2]);
  EXPECT_EQ(json::parse(reqs[2].http.body).find("agentId")->as_string(), other_agent);

  // More rows of one stream than a request carries: several requests.
  std::vector<std::string> many;
  for (int i = 0; i < 250; ++i) many.push_back(variant(ids[0]));
  std::vector<core::OutboxRow> many_rows;
  for (std::size_t i = 0; i < many.size(); ++i)
    many_rows.push_back(core::OutboxRow{static_cast<std::int64_t>(i + 1), ids[0], many[i], 1});
  auto split = adapter().build_requests({"http://h", "", no_headers, &opts}, many_rows, now_ms);
  ASSERT_EQ(split.size(), 3u);
  EXPECT_EQ(split[0].rows.size(), 100u);
  EXPECT_EQ(split[2].rows.size(), 50u);
  EXPECT_EQ(split[1].rows.front(), 100u);
}

TEST(VesSequencer, SendsBaseVersionWhenAskedAndNotAfterAResolution) {
  core::OutboxRow row{1, event_id, envelope, 1};
  row.entity_version = 4;
  const json::Value on = json::parse(R"({"base_version":true})");
  auto reqs = adapter().build_requests({"http://h", "", no_headers, &on}, {row}, now_ms);
  const json::Value sent = json::parse(reqs[0].http.body).find("events")->as_array()[0];
  ASSERT_NE(sent.find("base_version"), nullptr);
  EXPECT_EQ(sent.find("base_version")->as_number(), 3);
  // Everything else exactly as exported.
  EXPECT_EQ(sent.find("agent_signature")->as_string(),
            json::parse(envelope).find("agent_signature")->as_string());
  row.base_check = false;
  reqs = adapter().build_requests({"http://h", "", no_headers, &on}, {row}, now_ms);
  EXPECT_EQ(reqs[0].http.body.find("base_version"), std::string::npos);
  EXPECT_THROW(sequencer::with_base_version(R"({"base_version":1})", 2), core::Error);
}
