// The deliverer's SQL: every statement it runs on ves.outbox,
// ves.destinations, ves.sync_settings and ves.events, each behind one
// function that makes its PostgreSQL calls inside pg_call, so the deliverer's
// logic holds no pg_call lambdas (see pg/base/safe.hpp). SPI must be
// connected (see begin_step).
#pragma once

#include "pg/base/postgres.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgves::pg::outbox_sql {

// --- the worker's short transactions -------------------------------------------

// Starts a transaction with SPI connected and a snapshot, reporting
// `activity` in pg_stat_activity.
void begin_step(const char *activity);
// Commits it and reports the session idle.
void commit_step();
// Rolls back the current transaction after an error inside a step.
void abort_step();

// --- configuration -------------------------------------------------------------

// ves.sync_settings as JSON text ("{}" when NULL).
std::string sync_settings_json();

// Every destination with its sealed credentials, one text (or NULL) per
// column in kDestinationColumns order, in Postgres memory (the opened
// credentials are built from it in C++ afterwards).
enum DestinationColumn {
  kId,
  kName,
  kKind,
  kUrl,
  kSecretHex,
  kConcurrency,
  kRateLimit,
  kBurst,
  kTimeoutMs,
  kMaxAttempts,
  kBackoffBaseMs,
  kBackoffCapMs,
  kJitter,
  kBreakerThreshold,
  kBreakerCooldownMs,
  kHeaders,
  kPaused,
  kHeadersHex,
  kKindOptions,
  kTenantId,
  kCredentialsHex,
  kTokenHex,
  kDestinationColumns
};
char ***destination_rows(uint64 *count);

// The id of the destination named `name`, 0 when there is none.
int destination_id(const std::string &name);

// --- claiming ------------------------------------------------------------------

// Leases up to `rows` open rows of `destination` from position `floor` on
// for `lease_seconds` to `owner`, taking over rows whose holder is not in
// `live_owners`. Returns how many result rows; read them with claimed_row.
// With `with_listings` (a platform destination), a result row per (outbox
// row, listing) of each claimed inventory row, with its SKU's counts as the
// claim saw them (claimed_listing), and one for an outbox row without.
uint64 claim(int destination, int rows, int lease_seconds, std::int64_t floor, std::int64_t owner,
             const std::vector<std::int64_t> &live_owners, bool with_listings = false);

struct ClaimedRow {
  std::int64_t id = 0;
  pg_uuid_t tenant{};
  int destination = 0;
  int attempts = 0;
  std::int64_t position = 0;
  TimestampTz recorded_at = 0;
  std::string entity_type, entity_id;
  bool base_check = true;
};
// Row `i` of the last claim (before any other statement).
ClaimedRow claimed_row(uint64 i);
struct ListingFact;
// The listing of result row `i` of the last claim made with_listings, into
// `fact`; false when the row has none. fact->row (the outbox row) is set
// either way.
bool claimed_listing(uint64 i, ListingFact *fact);

// Selects the stored events at `positions` (recorded between the bounds,
// which prune partitions) with kStoredEventColumns; returns the result table
// for read_stored_event.
const SPITupleTable *events(const std::vector<std::int64_t> &positions, TimestampTz first_recorded,
                            TimestampTz last_recorded, uint64 *count);

// What a platform row needs of its event: the id (its idempotency key) and
// the entity version, without the payload.
struct EventRef {
  std::int64_t position;
  std::string event_id;  // 36 characters
  std::int64_t entity_version;
};
// The events at `positions`, as events() bounds them, read without their
// payloads.
std::vector<EventRef> event_refs(const std::vector<std::int64_t> &positions,
                                 TimestampTz first_recorded, TimestampTz last_recorded);

// --- recording -----------------------------------------------------------------

// What became of one row: its new status and when to try it again.
struct RowOutcome {
  std::int64_t id;
  pg_uuid_t tenant;
  const char *status;  // 'synced', 'failed', 'dead' or 'conflict'
  std::int64_t delay_ms;
  int attempts;
  long http_status;
  std::string error;
  std::string excerpt;
  // A verified sequencer receipt to store in ves.sequencer_receipts (JSON),
  // or empty; event_id and destination say whose.
  std::string receipt;
  bool receipt_signature_verified = false;
  std::string event_id;
  int destination = 0;
};
struct ListingOutcome;
// Writes outcomes of rows leased by `owner`, ending their leases, and in
// the same statement what became of the listings in `listings`, if any,
// with the cross-platform samples that completes (ves.listings' trigger
// leaves them to the statement). `n` may be 0 when there are listings.
void record_rows(const RowOutcome *outcomes, size_t n, std::int64_t owner,
                 const std::vector<ListingOutcome> *listings = nullptr);

// A destination's health after a round; `gone` pauses it with last_error.
void record_destination(int id, const char *breaker_state, bool succeeded,
                        const std::string &last_error, bool gone);

// Gives rows back unsent (their leases end).
void release_rows(const std::vector<std::int64_t> &ids, std::int64_t owner);
// Gives back every row leased by `owner`.
void release_leases_of(std::int64_t owner);

// --- platform destinations -------------------------------------------------------

// One listing of a claimed row's SKU with the SKU's count now.
struct ListingFact {
  std::int64_t row = 0;  // the outbox row
  std::string location;
  std::string platform_ref;  // JSON
  std::int64_t available = 0;
  std::optional<std::int64_t> known;  // ves.listings.known_quantity
};
// What became of one listing's push: state 'synced' (the platform has
// quantity now), 'stale' or 'failed' (error says why).
struct ListingOutcome {
  int destination = 0;
  std::string sku, location;
  std::int64_t quantity = 0;
  const char *state = "synced";
  std::string error;
  // What the listing held as known_quantity when its row was claimed: a
  // push that leaves it unchanged completes no cross-platform sample.
  std::optional<std::int64_t> prior_known;
};

// A batch a platform accepted for later processing (RowVerdict::follow_up):
// the handle to ask about and its lines in the order they were sent, as JSON
// [{"sku", "location", "key"}]. Kept in ves.platform_batches until
// ves.follow_up_batches has its answer.
struct AcceptedBatch {
  int destination = 0;
  pg_uuid_t tenant{};
  std::string handle;
  std::string items;
};
void record_batches(const std::vector<AcceptedBatch> &batches);

}  // namespace pgves::pg::outbox_sql
