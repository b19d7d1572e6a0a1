#include <gtest/gtest.h>

#include <string>

#include "core/base/error.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/ves/pull.hpp"
#include "core/ves/ves.hpp"

namespace core = pgves::core;
namespace json = pgves::core::json;
namespace pull = pgves::core::pull;
namespace ves = pgves::core::ves;

namespace {

const std::string tenant = "11111111-2222-4333-8444-555555555555";
const std::string store = "66666666-7777-4888-9999-aaaaaaaaaaaa";
const std::string event_id = "0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";

// The envelope of test_adapter_ves_sequencer.cpp (signed by the mock
// sequencer's own implementation), served at sequence number `seq`.
std::string envelope(int seq, const std::string &id = event_id, const std::string &t = tenant) {
  return R"({"ves_version":1,"event_id":")" + id + R"(","tenant_id":")" + t + R"(","store_id":")" +
         store +
         R"(","source_agent_id":"bbbbbbbb-cccc-4ddd-8eee-ffffffffffff","agent_key_id":1,)"
         R"("entity_type":"product","entity_id":"sku-1","event_type":"product.updated",)"
         R"("created_at":"2026-11-30T07:35:41.291Z","payload_kind":0,)"
         R"("payload":{"price":12.5,"name":"Mug"},)"
         R"("payload_plain_hash":"0xc3d25857f71a6d02bad727a780a134d0096c86f65e80bd5aa4c120215cf9b809",)"
         R"("payload_cipher_hash":"0x0000000000000000000000000000000000000000000000000000000000000000",)"
         R"("agent_signature":"0xa6b70225d6525bf6d2575a1ebfae0e98b50b91aa74110da2451329eac8efd4f6e47a2cdfa975fc4dd5c8663b857a1bb42b396841ddf9974aa39d992643295d07",)"
         R"("sequence_number":)" +
         std::to_string(seq) + R"(,"sequenced_at":"2026-11-30T07:35:41.291095Z"})";
}

const std::string receipt_hash_5 =
    "8e1a75a874fee41d16d095e8dd269790fd3c33652d03b67b8e9ee21e8f12b0b2";

std::string receipt(int seq = 5, const std::string &hash = receipt_hash_5) {
  return R"({"sequencerId":"9b2f8c1e-0000-4000-8000-000000000001","eventId":")" + event_id +
         R"(","sequenceNumber":)" + std::to_string(seq) +
         R"(,"sequencedAt":"2026-11-30T07:35:41.291095+00:00","receiptHash":")" + hash +
         R"(","signatureAlg":"none","sequencerSignature":""})";
}

std::string item(int seq, const std::string &id = event_id) {
  return R"({"envelope":)" + envelope(seq, id) +
         R"(,"sequenced_at":"2026-11-30T07:35:41.291095Z","receipt":)" + receipt(seq) + "}";
}

std::string id_n(int n) {
  std::string s = "00000000-0000-4000-8000-00000000000" + std::to_string(n % 10);
  return s;
}

std::string page(const std::vector<std::string> &items) {
  std::string out = R"({"events":[)";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + R"(],"count":)" + std::to_string(items.size()) + "}";
}

}  // namespace

TEST(PullOptions, DefaultsAndTheStreamAPullNeeds) {
  pull::Options o = pull::parse_options(json::parse("{}"));
  EXPECT_FALSE(o.pull);
  EXPECT_EQ(o.interval_ms, 1000);
  EXPECT_EQ(o.batch, 100);
  o = pull::parse_options(json::parse(R"({"pull": true, "tenant_id": ")" + tenant +
                                      R"(", "store_id": ")" + store +
                                      R"(", "pull_interval_ms": 250, "pull_batch": 1000})"));
  EXPECT_TRUE(o.pull);
  EXPECT_EQ(ves::format_uuid(*o.store), store);
  EXPECT_EQ(o.interval_ms, 250);
  EXPECT_EQ(o.batch, 1000);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"pull": true})")), core::OptionError);
  EXPECT_THROW(
      pull::parse_options(json::parse(R"({"pull": true, "tenant_id": ")" + tenant + "\"}")),
      core::OptionError);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"pull": 1})")), core::OptionError);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"store_id": "x"})")), core::OptionError);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"pull_batch": 0})")), core::OptionError);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"pull_batch": 1001})")), core::OptionError);
  EXPECT_THROW(pull::parse_options(json::parse(R"({"pull_interval_ms": 9})")), core::OptionError);
  // Not pulling, a stream may still be named (push-only destinations).
  EXPECT_FALSE(
      pull::parse_options(json::parse(R"({"pull": false, "store_id": ")" + store + "\"}")).pull);
}

TEST(PullFetch, TheRequestAndWhatItsAnswerMeans) {
  core::HttpRequest r = pull::page_request("http://127.0.0.1:9/", "ss_key", false,
                                           ves::parse_uuid(tenant), ves::parse_uuid(store), 7, 50);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://127.0.0.1:9/api/v1/events?tenant_id=" + tenant + "&store_id=" + store +
                       "&from=7&limit=50");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].second, "ApiKey ss_key");
  r = pull::page_request("http://h", "tok", true, ves::parse_uuid(tenant), ves::parse_uuid(store),
                         1, 1);
  EXPECT_EQ(r.headers[1].second, "Bearer tok");
  EXPECT_EQ(pull::page_request("http://h", "", true, ves::parse_uuid(tenant),
                               ves::parse_uuid(store), 1, 1)
                .headers.size(),
            1u);

  EXPECT_TRUE(pull::classify_fetch(false, 200, "", "{}", "", 0).ok);
  pull::FetchVerdict v = pull::classify_fetch(false, 429, "7", "slow down", "", 0);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(v.retry);
  EXPECT_EQ(v.retry_after_ms, 7000);
  EXPECT_EQ(v.error, "the sequencer answered HTTP 429: slow down");
  v = pull::classify_fetch(false, 401, "", "{\"error\":\"x\"}", "", 0);
  EXPECT_FALSE(v.retry);
  v = pull::classify_fetch(true, 0, "", "", "Connection refused", 0);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(v.retry);
  EXPECT_EQ(v.error, "the sequencer could not be read: Connection refused");
  EXPECT_TRUE(pull::classify_fetch(false, 503, "", "", "", 0).retry);
}

TEST(PullFetch, BackoffDoublesFromTheIntervalUpToFiveMinutes) {
  EXPECT_EQ(pull::backoff_ms(1, 1000, 0), 1000);
  EXPECT_EQ(pull::backoff_ms(2, 1000, 0), 2000);
  EXPECT_EQ(pull::backoff_ms(4, 1000, 0), 8000);
  EXPECT_EQ(pull::backoff_ms(40, 1000, 0), 300000);
  EXPECT_EQ(pull::backoff_ms(1, 10, 0), 500);          // never faster than twice a second
  EXPECT_EQ(pull::backoff_ms(1, 1000, 60000), 60000);  // what the server asked for
}

TEST(PullPlan, AContiguousPageIsTakenWhole) {
  pull::Plan p = pull::plan_page(page({item(5, id_n(5)), item(6, id_n(6)), item(7, id_n(7))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::none);
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[2].sequence, 7);
  EXPECT_EQ(p.served, 3);
  EXPECT_EQ(p.head, 7);
  EXPECT_TRUE(p.items[0].receipt.has_value());
  EXPECT_EQ(pull::plan_page(page({}), 5).items.size(), 0u);
}

TEST(PullPlan, AHoleStopsBeforeIt) {
  pull::Plan p = pull::plan_page(page({item(5, id_n(5)), item(7, id_n(7)), item(8, id_n(8))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::hole);
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.stop_at, 6);
  EXPECT_EQ(p.served_at_stop, 7);
  EXPECT_EQ(p.head, 8);
  EXPECT_EQ(p.detail, "sequence number 6 is missing (the page went on at 7)");
  // A page that does not start at the cursor has a hole at the cursor.
  p = pull::plan_page(page({item(6, id_n(6))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::hole);
  EXPECT_TRUE(p.items.empty());
  EXPECT_EQ(p.stop_at, 5);
}

TEST(PullPlan, RepeatsAndDisorder) {
  // The same event twice in a row: served twice, taken once.
  pull::Plan p = pull::plan_page(page({item(5, id_n(5)), item(5, id_n(5)), item(6, id_n(6))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::none);
  EXPECT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.repeated, 1);
  // Another event at a number already taken.
  p = pull::plan_page(page({item(5, id_n(5)), item(5, id_n(6)), item(6, id_n(7))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::repeat);
  EXPECT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.stop_at, 6);
  // A lower number later.
  p = pull::plan_page(page({item(5, id_n(5)), item(6, id_n(6)), item(4, id_n(4))}), 5);
  EXPECT_EQ(p.stop, pull::Stop::out_of_order);
  EXPECT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.stop_at, 7);
}

TEST(PullPlan, UnreadableItemsAndPages) {
  pull::Plan p = pull::plan_page(
      R"({"events":[)" + item(5, id_n(5)) + R"(,{"envelope":{"event_id":"x"}}]})", 5);
  EXPECT_EQ(p.stop, pull::Stop::unreadable);
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[1].sequence, 6);
  EXPECT_EQ(p.items[1].problem, "the envelope has no positive integer sequence_number");
  EXPECT_EQ(pull::plan_page(R"({"events":[1]})", 1).items[0].problem,
            "the item has no envelope object");
  EXPECT_THROW(pull::plan_page("not json", 1), core::Error);
  EXPECT_THROW(pull::plan_page(R"({"events":{}})", 1), core::Error);
  EXPECT_THROW(pull::plan_page(R"({"events":[)", 1), core::Error);  // cut short
}

TEST(PullCheck, AnEventItsStreamAndItsReceipt) {
  const ves::Uuid t = ves::parse_uuid(tenant), s = ves::parse_uuid(store);
  const core::sequencer::Settings none;
  auto check = [&](const std::string &body, std::int64_t from = 5) {
    pull::Plan p = pull::plan_page(body, from);
    return pull::check_item(p.items.at(0), t, s, none);
  };
  pull::ItemCheck c = check(page({item(5)}));
  EXPECT_EQ(c.reason, "");
  ASSERT_TRUE(c.event.has_value());
  EXPECT_EQ(ves::format_uuid(c.event->event_id), event_id);

  // Another stream than the one asked for.
  c = pull::check_item(
      pull::plan_page(
          page({R"({"envelope":)" + envelope(5, event_id, "11111111-2222-4333-8444-000000000000") +
                R"(,"receipt":)" + receipt() + "}"}),
          5)
          .items.at(0),
      t, s, none);
  EXPECT_EQ(c.kind, "pulled_event_stream");
  // No receipt; a receipt for another number; a receipt hash that is not this event's.
  c = check(page({R"({"envelope":)" + envelope(5) + "}"}));
  EXPECT_EQ(c.kind, "pulled_event_receipt");
  EXPECT_EQ(c.reason, "the event was served without its sequencer receipt");
  c = check(page({R"({"envelope":)" + envelope(5) + R"(,"receipt":)" + receipt(6) + "}"}));
  EXPECT_EQ(c.kind, "pulled_event_receipt");
  std::string flipped = receipt_hash_5;
  flipped[0] = '9';
  c = check(page({R"({"envelope":)" + envelope(5) + R"(,"receipt":)" + receipt(5, flipped) + "}"}));
  EXPECT_EQ(c.kind, "pulled_event_receipt");
  // The same event served at another number: its receipt hash covers the number.
  c = check(page({R"({"envelope":)" + envelope(6) + R"(,"receipt":)" + receipt(6) + "}"}), 6);
  EXPECT_EQ(c.kind, "pulled_event_receipt");
  // An envelope that cannot be read.
  c = check(page(
      {R"({"envelope":{"sequence_number":5,"event_id":"nope"},"receipt":)" + receipt() + "}"}));
  EXPECT_EQ(c.kind, "pulled_event_envelope");
}
