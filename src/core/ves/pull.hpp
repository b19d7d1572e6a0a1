// Pulling a VES stream (tenant, store) from a sequencer: the decisions that
// need no database. A pull reads a page of sequenced events from the
// cursor (the next sequence number to apply); plan_page puts the page in
// order and says where applying must stop (a hole, a repeated or
// out-of-order number, an unreadable item), check_item checks what the
// sequencer vouches for (the envelope's stream and sequence number, the
// receipt). src/pg/sync/pull.cpp does the rest through the checks that
// ves.ingest_event makes (payload hash, the agent's key and signature;
// src/pg/store/ingest.hpp), then stores, moves the cursor, raises alerts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "core/platforms/ves_sequencer.hpp"
#include "core/ves/ves.hpp"

namespace pgves::core::pull {

// Kind options of a pull source (a ves_sequencer destination with
// "pull": true): the stream it pulls, how often and how much at once.
struct Options {
  bool pull = false;
  std::optional<ves::Uuid> tenant, store;
  std::int64_t interval_ms = 1000;  // "pull_interval_ms", 10 .. 86400000
  std::int64_t batch = 100;         // "pull_batch", 1 .. 1000
};

constexpr std::int64_t kMaxBatch = 1000;

// Reads and checks the pull options of a destination's options (the
// common "tenant_id" and the kind's "store_id", "pull", "pull_interval_ms",
// "pull_batch"). Throws OptionError("invalid_option") with a hint.
Options parse_options(const json::Value &options);

// The read of one page: GET <url>/api/v1/events?tenant_id=&store_id=&from=&limit=
// with the destination's credential as for a push.
HttpRequest page_request(std::string_view url, std::string_view secret, bool bearer,
                         const ves::Uuid &tenant, const ves::Uuid &store, std::int64_t from,
                         std::int64_t limit);

// What the answer to a page read means for the puller.
struct FetchVerdict {
  bool ok = false;                  // a 200: the body is the page
  bool retry = true;                // false: retrying soon will not help (400, 401, 403, 404)
  std::int64_t retry_after_ms = 0;  // the server asked to wait this long (429/503 Retry-After)
  std::string error;                // why it failed
};
FetchVerdict classify_fetch(bool transport_error, long status, std::string_view retry_after,
                            std::string_view body, std::string_view transport_message,
                            std::int64_t now_unix_ms);

// The pause before trying a source again after `failures` failed reads in a
// row (1, 2, ...): doubling from the interval (at least 500 ms) up to 5
// minutes, or what the server asked for when longer.
std::int64_t backoff_ms(int failures, std::int64_t interval_ms, std::int64_t retry_after_ms);

// One item of a page, in the order it is to be applied.
struct Item {
  std::int64_t sequence = 0;  // the envelope's sequence_number
  json::Value envelope;       // as served
  std::optional<json::Value> receipt;
  std::string raw;      // the item as received (canonical JSON), for alerts
  std::string problem;  // set when the item cannot be read at all
};

enum class Stop {
  none,          // the page was read to its end
  hole,          // a number is missing: stop before it, re-pull from it later
  repeat,        // a number served again for another event
  out_of_order,  // a number lower than one already seen
  unreadable,    // an item with no envelope or no sequence number (last in items, with problem)
};
const char *stop_name(Stop s);

struct Plan {
  std::vector<Item> items;  // contiguous from `from`; the last may be unreadable
  Stop stop = Stop::none;
  std::int64_t stop_at = 0;         // the number where applying stopped (not applied)
  std::int64_t served_at_stop = 0;  // the number the page had there instead
  std::int64_t served = 0;          // items in the page
  std::int64_t repeated = 0;        // the same event served twice in a row (ignored)
  std::int64_t head = 0;            // the highest sequence number the page showed
  std::string detail;               // what was wrong, for the log and the cursor
};

// Reads a page ({"events": [items]}) for the stream starting at `from`.
// Throws Error("invalid_page") when the body is not such a page (then
// nothing of it can be trusted to be in order).
Plan plan_page(std::string_view body, std::int64_t from);

// How one pulled event checks against what the sequencer vouches for.
struct ItemCheck {
  std::string kind;    // alert kind when refused: pulled_event_envelope, pulled_event_stream,
                       // pulled_event_receipt
  std::string reason;  // empty when it checks
  std::optional<ves::Event> event;
};
ItemCheck check_item(const Item &item, const ves::Uuid &tenant, const ves::Uuid &store,
                     const sequencer::Settings &settings);

}  // namespace pgves::core::pull
