// See pull.hpp.
#include "pg/sync/pull.hpp"

#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/platforms/destination_config.hpp"
#include "core/ves/pull.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/base/sqlstate.hpp"
#include "pg/store/ingest.hpp"
#include "pg/store/keys.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/deliverer.hpp"
#include "pg/sync/http_engine.hpp"
#include "pg/sync/own_transaction.hpp"
#include "pg/sync/remote_pg.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/snapmgr.h"
}

#include <sodium.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgves::pg::pull {
namespace {

namespace core = pgves::core;
using core::json::Value;

// A page of at most 1000 events; anything longer is cut and then refused
// as a page that is not JSON.
constexpr size_t kMaxPageBytes = 64u << 20;
// Pulls in a row that stop at the same missing number before the stream is
// held by a security alert (pulled_sequence_gap) for an operator to decide.
// The pulls after a stop wait longer each time (core::pull::backoff_ms:
// 0.5, 1, 2, 4 s), so the fifth comes about 7.5 s after the first: a number
// a sequencer's later commit fills (its transactions commit out of order)
// is never taken for a lost one.
constexpr int kGapStreakAlert = 5;

// A source as ves._pull_sources() lists it, credentials opened.
struct Source {
  int id = 0;
  std::string name, url, kind;
  Value kind_options;
  core::ves::Uuid tenant{}, store{};
  long timeout_ms = 10000;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string secret;
  std::string conninfo;  // ves_postgres
  std::int64_t next_sequence = 1;
  bool stopped = false;
  bool fresh = true;  // the cursor has applied nothing yet
  core::pull::Options options;
  core::sequencer::Settings settings;

  Source() = default;
  Source(Source &&) = default;
  Source &operator=(Source &&) = default;
  ~Source() {
    sodium_memzero(secret.data(), secret.size());
    sodium_memzero(conninfo.data(), conninfo.size());
    for (auto &h : headers) sodium_memzero(h.second.data(), h.second.size());
  }
};

std::string opened(uint64 row, int column) {
  bool isnull = false;
  Datum d = safe::spi_datum(row, column, &isnull);
  if (isnull) return {};
  std::vector<uint8_t> box = safe::bytea_bytes(d);
  return keys::open_secret(box.data(), box.size());
}

// The sources (one when id is given); SPI connected.
std::vector<Source> load_sources(std::optional<int> id, bool include_paused) {
  static SavedPlan plan{
      "SELECT destination_id, name, url, kind_options::text, tenant_id::text, store_id::text,"
      " timeout_ms, headers::text, secret_box, headers_box, next_sequence, stopped::text,"
      " fresh::text, kind, credentials_box FROM ves._pull_sources($1)"
      " WHERE $2 IS NULL OR destination_id = $2",
      2,
      {BOOLOID, INT4OID},
      nullptr};
  Datum args[2] = {BoolGetDatum(include_paused), Int32GetDatum(id.value_or(0))};
  const char nulls[3] = {' ', id ? ' ' : 'n', '\0'};
  safe::spi_run(plan, args, nulls, true, SPI_OK_SELECT);
  std::vector<Source> out;
  const uint64 n = SPI_processed;
  for (uint64 r = 0; r < n; ++r) {
    Source s;
    s.id = static_cast<int>(safe::spi_int64(r, 1, 0));
    s.name = safe::spi_text(r, 2);
    s.url = safe::spi_text(r, 3);
    s.kind_options = core::json::parse(safe::spi_text(r, 4));
    s.tenant = core::ves::parse_uuid(safe::spi_text(r, 5));
    s.store = core::ves::parse_uuid(safe::spi_text(r, 6));
    s.timeout_ms = static_cast<long>(safe::spi_int64(r, 7, 10000));
    for (const core::HeaderSpec &h :
         core::parse_header_option(core::json::parse(safe::spi_text(r, 8))))
      if (!h.secret) s.headers.emplace_back(h.name, h.value);
    s.secret = opened(r, 9);
    if (std::string sealed = opened(r, 10); !sealed.empty()) {
      for (const core::HeaderSpec &h : core::parse_secret_headers(sealed))
        s.headers.emplace_back(h.name, h.value);
      sodium_memzero(sealed.data(), sealed.size());
    }
    s.next_sequence = safe::spi_int64(r, 11, 1);
    s.stopped = safe::spi_text(r, 12) == "true";
    s.fresh = safe::spi_text(r, 13) == "true";
    s.kind = safe::spi_text(r, 14);
    // A ves_postgres source connects with its sealed conninfo credential.
    if (std::string sealed = opened(r, 15); !sealed.empty()) {
      const Value credentials = core::json::parse(sealed);
      sodium_memzero(sealed.data(), sealed.size());
      if (const Value *c = credentials.find("conninfo"); c && c->kind() == core::json::Kind::string)
        s.conninfo = c->as_string();
    }
    // The stream's tenant is the destination's tenant_id (a common option).
    Value::Object with_tenant = s.kind_options.as_object();
    with_tenant.emplace_back("tenant_id", safe::spi_text(r, 5));
    s.options = core::pull::parse_options(Value(std::move(with_tenant)));
    s.settings = core::sequencer::parse_settings(&s.kind_options);
    out.push_back(std::move(s));
  }
  return out;
}

// A ves_sequencer source's request for a page: GET <url>/api/v1/events
// (its headers hold the source's credentials: zero them once sent).
core::HttpRequest page_request(const Source &source, const core::ves::Uuid &tenant,
                               const core::ves::Uuid &store, std::int64_t from,
                               std::int64_t limit) {
  core::HttpRequest request = core::pull::page_request(
      source.url, source.secret, source.settings.bearer, tenant, store, from, limit);
  core::append_extra_headers(request, source.headers);
  return request;
}

void forget_credentials(core::HttpRequest &request) {
  for (auto &h : request.headers) sodium_memzero(h.second.data(), h.second.size());
}

// What the sequencer answered to a page request.
Transport::Page page_of(const HttpResult &h) {
  core::pull::FetchVerdict v = core::pull::classify_fetch(
      h.transport_error, h.status, h.retry_after, h.excerpt, h.error, unix_ms());
  Transport::Page page;
  page.ok = v.ok;
  page.retry = v.retry;
  page.retry_after_ms = v.retry_after_ms;
  page.error = v.error;
  if (v.ok) page.body = h.excerpt;
  return page;
}

// A ves_sequencer source, read in the calling backend (ves.pull_events; the
// worker sends the same request on its own engine).
class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(const Source &source) : source_(source) {}
  Page fetch(const core::ves::Uuid &tenant, const core::ves::Uuid &store, std::int64_t from,
             std::int64_t limit) override {
    core::HttpRequest request = page_request(source_, tenant, store, from, limit);
    std::vector<HttpResult> results = perform_all({request}, source_.timeout_ms, kMaxPageBytes);
    forget_credentials(request);
    return page_of(results.at(0));
  }

 private:
  const Source &source_;
};

// A ves_postgres source's page request: ves.sequenced_events on the remote
// pg_ves database answers the same page as a sequencer's GET /api/v1/events.
const char *const kRemotePageSql =
    "SELECT ves.sequenced_events($1::uuid, $2::uuid, $3::bigint, $4::int)";

std::vector<std::string> remote_page_params(const core::ves::Uuid &tenant,
                                            const core::ves::Uuid &store, std::int64_t from,
                                            std::int64_t limit) {
  return {core::ves::format_uuid(tenant), core::ves::format_uuid(store), std::to_string(from),
          std::to_string(limit)};
}

// What the remote answered (remote_pg's answer shapes).
Transport::Page remote_page_of(const HttpResult &h) {
  Transport::Page page;
  if (!h.transport_error && h.status == 200) {
    page.ok = true;
    page.body = h.excerpt;
  } else if (h.transport_error) {
    page.error = h.error;
  } else {
    page.retry = false;
    page.error = "remote pg_ves: " + h.excerpt;
  }
  return page;
}

Transport::Page no_conninfo() {
  Transport::Page page;
  page.error = "the source has no conninfo option";
  page.retry = false;
  return page;
}

// A ves_postgres source read in the calling backend (ves.pull_events; the
// worker makes the same call on its own engine).
class PgTransport final : public Transport {
 public:
  explicit PgTransport(const Source &source) : source_(source) {}
  Page fetch(const core::ves::Uuid &tenant, const core::ves::Uuid &store, std::int64_t from,
             std::int64_t limit) override {
    if (source_.conninfo.empty()) return no_conninfo();
    return remote_page_of(
        remote_pg::call(remote_pg::Target{source_.id, source_.conninfo, source_.timeout_ms},
                        kRemotePageSql, remote_page_params(tenant, store, from, limit)));
  }

 private:
  const Source &source_;
};

std::unique_ptr<Transport> transport_for(const Source &source) {
  if (source.kind == "ves_sequencer") return std::make_unique<HttpTransport>(source);
  if (source.kind == "ves_postgres") return std::make_unique<PgTransport>(source);
  throw VesError(sqlstate::pull_failed,
                 "source \"" + source.name + "\" is of kind " + source.kind +
                     ", which pg_ves cannot pull from yet",
                 {}, "Pull from a ves_sequencer destination.");
}

struct Summary {
  std::int64_t pulled = 0, applied = 0, duplicates = 0, head = 0, cursor = 1;
  std::optional<std::int64_t> stopped_at, alert_id;
  std::string stop_reason, detail;

  std::string json() const {
    Value::Object o{{"pulled", static_cast<double>(pulled)},
                    {"applied", static_cast<double>(applied)},
                    {"duplicates", static_cast<double>(duplicates)},
                    {"head", static_cast<double>(head)},
                    {"cursor", static_cast<double>(cursor)},
                    {"stopped_at", stopped_at ? Value(static_cast<double>(*stopped_at)) : Value()},
                    {"stop_reason", stop_reason.empty() ? Value() : Value(stop_reason)},
                    {"alert_id", alert_id ? Value(static_cast<double>(*alert_id)) : Value()},
                    {"detail", detail.empty() ? Value() : Value(detail)}};
    return core::jcs::canonicalize(Value(std::move(o)));
  }
};

void log_line(const std::string &line) {
  pg_call_void([&] { ereport(LOG, (errmsg("%s", line.c_str()), errhidestmt(true))); });
}

std::string stream_name(const Source &s) {
  return "source \"" + s.name + "\" stream " + core::ves::format_uuid(s.tenant) + "/" +
         core::ves::format_uuid(s.store);
}

// Holds the stream at seq with a security alert; returns its id.
std::int64_t stop_with_alert(const Source &s, std::int64_t seq, const std::string &kind,
                             const std::string &reason, const std::optional<core::ves::Uuid> &event,
                             const std::string &raw) {
  static SavedPlan plan{"SELECT ves._pull_stop($1, $2, $3, $4, $5, $6)",
                        6,
                        {INT4OID, INT8OID, TEXTOID, TEXTOID, UUIDOID, BYTEAOID},
                        nullptr};
  Datum args[6] = {Int32GetDatum(s.id),
                   Int64GetDatum(seq),
                   safe::text_datum(kind),
                   safe::text_datum(reason),
                   event ? safe::uuid_datum(to_pg_uuid(*event)) : Datum(0),
                   safe::bytea_datum(raw.data(), raw.size())};
  const char nulls[7] = {' ', ' ', ' ', ' ', event ? ' ' : 'n', ' ', '\0'};
  safe::spi_run(plan, args, nulls, false, SPI_OK_SELECT);
  const std::int64_t id = safe::spi_int64(0, 1, 0);
  log_line("pg_ves: security alert " + std::to_string(id) + ": kind=" + kind + ", " +
           stream_name(s) + " held at sequence number " + std::to_string(seq) +
           ", reason=" + reason);
  return id;
}

// Whether an event with this id is stored here: nullopt when not, else
// whether with the same content (stream, entity, type, payload hash).
std::optional<bool> stored_as(const core::ves::Event &e) {
  static SavedPlan plan{
      "SELECT (e.tenant_id OPERATOR(pg_catalog.=) $1 AND e.store_id OPERATOR(pg_catalog.=) $2"
      " AND e.entity_type OPERATOR(pg_catalog.=) $3 AND e.entity_id OPERATOR(pg_catalog.=) $4"
      " AND e.event_type OPERATOR(pg_catalog.=) $5"
      " AND e.payload_plain_hash OPERATOR(pg_catalog.=) $6)::text"
      " FROM ves.events e WHERE e.event_id OPERATOR(pg_catalog.=) $7 LIMIT 1",
      7,
      {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID, UUIDOID},
      nullptr};
  Datum args[7] = {safe::uuid_datum(to_pg_uuid(e.tenant_id)),
                   safe::uuid_datum(to_pg_uuid(e.store_id)),
                   safe::text_datum(e.entity_type),
                   safe::text_datum(e.entity_id),
                   safe::text_datum(e.event_type),
                   safe::bytea_datum(e.payload_plain_hash.data(), e.payload_plain_hash.size()),
                   safe::uuid_datum(to_pg_uuid(e.event_id))};
  safe::spi_run(plan, args, nullptr, true, SPI_OK_SELECT);
  if (SPI_processed == 0) return std::nullopt;
  return safe::spi_text(0, 1) == "true";
}

void apply_stored(const core::ves::Event &e) {
  static SavedPlan plan{"SELECT ves._apply_ingested($1)", 1, {UUIDOID}, nullptr};
  Datum args[1] = {safe::uuid_datum(to_pg_uuid(e.event_id))};
  safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
}

// A pulled event is fanned out like any stored event, but the source it
// came from has it already: its row there is removed in the transaction
// that made it (otherwise every node would push the whole stream back,
// each answered as a replay).
void skip_echo(const Source &s, const core::ves::Event &e) {
  static SavedPlan plan{
      "DELETE FROM ves.outbox WHERE destination_id = $1 AND tenant_id = $2 AND entity_type = $3"
      " AND entity_id = $4 AND event_id = $5 AND status = 'pending'",
      5,
      {INT4OID, UUIDOID, TEXTOID, TEXTOID, UUIDOID},
      nullptr};
  Datum args[5] = {Int32GetDatum(s.id), safe::uuid_datum(to_pg_uuid(e.tenant_id)),
                   safe::text_datum(e.entity_type), safe::text_datum(e.entity_id),
                   safe::uuid_datum(to_pg_uuid(e.event_id))};
  safe::spi_run(plan, args, nullptr, false, SPI_OK_DELETE);
}

void keep_receipt(const Source &s, const core::ves::Event &e, std::int64_t seq,
                  const Value &receipt, bool signature_verified) {
  static SavedPlan plan{"SELECT ves._pull_receipt($1, $2, $3, $4, $5::jsonb, $6)",
                        6,
                        {INT4OID, UUIDOID, UUIDOID, INT8OID, TEXTOID, BOOLOID},
                        nullptr};
  Datum args[6] = {Int32GetDatum(s.id),
                   safe::uuid_datum(to_pg_uuid(e.tenant_id)),
                   safe::uuid_datum(to_pg_uuid(e.event_id)),
                   Int64GetDatum(seq),
                   safe::text_datum(core::jcs::canonicalize(receipt)),
                   BoolGetDatum(signature_verified)};
  safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
}

// Applies a page read from `from` (fresh_start: the caller asked to start a
// stream that has applied nothing at `from`). SPI connected; runs in the
// caller's transaction, which locks the cursor row first.
Summary apply_page(const Source &s, std::int64_t from, bool fresh_start, const std::string &body) {
  static SavedPlan cursor_plan{
      "SELECT next_sequence, stopped_at_sequence, alert_id, head_sequence,"
      " (applied = 0 AND duplicates = 0 AND last_event_id IS NULL)::text"
      " FROM ves._pull_cursor($1)",
      1,
      {INT4OID},
      nullptr};
  Datum cargs[1] = {Int32GetDatum(s.id)};
  safe::spi_run(cursor_plan, cargs, nullptr, false, SPI_OK_SELECT);
  Summary out;
  const std::int64_t next = safe::spi_int64(0, 1, 1);
  const bool fresh = safe::spi_text(0, 5) == "true";
  out.cursor = next;
  out.head = safe::spi_int64(0, 4, 0);
  if (!safe::spi_isnull(0, 2)) {
    out.stopped_at = safe::spi_int64(0, 2, 0);
    if (!safe::spi_isnull(0, 3)) out.alert_id = safe::spi_int64(0, 3, 0);
    out.stop_reason = "alert";
    out.detail = "the stream is held by a security alert until an operator acknowledges it";
    return out;
  }
  if (from != next && !(fresh && fresh_start)) {
    // Another pull moved the cursor since this page was asked for.
    out.stop_reason = "raced";
    out.detail = "the cursor moved while the page was read; nothing was applied";
    return out;
  }

  core::pull::Plan plan;
  try {
    plan = core::pull::plan_page(body, from);
  } catch (const core::Error &e) {
    throw VesError(sqlstate::pull_failed,
                   "source \"" + s.name + "\" served a page that cannot be read: " + e.what(), {},
                   "Check that the source's url points at a VES sequencer; nothing was applied.");
  }
  out.pulled = plan.served;
  std::int64_t cursor = from;
  std::optional<core::ves::Uuid> last_id;
  std::optional<std::int64_t> alert;
  for (const core::pull::Item &item : plan.items) {
    core::pull::ItemCheck check = core::pull::check_item(item, s.tenant, s.store, s.settings);
    std::optional<core::ves::Uuid> event_id;
    if (check.event) event_id = check.event->event_id;
    if (check.reason.empty()) {
      const core::ves::Event &e = *check.event;
      std::optional<ingest::Refusal> refusal = ingest::check_content(e);
      if (!refusal) {
        // The receipt's sequencedAt: when the sequencer took the event in.
        const Value *at = item.receipt ? item.receipt->find("sequencedAt") : nullptr;
        refusal = ingest::check_signature(
            e, at && at->kind() == core::json::Kind::string ? at->as_string() : std::string());
      }
      if (refusal) {
        check.kind =
            refusal->alert_kind.empty() ? "pulled_event_envelope" : "pulled_" + refusal->alert_kind;
        check.reason = refusal->reason;
      }
    }
    std::optional<bool> same;
    if (check.reason.empty()) {
      same = stored_as(*check.event);
      if (same && !*same) {
        check.kind = "pulled_event_conflict";
        check.reason = "event id " + core::ves::format_uuid(check.event->event_id) +
                       " is stored here with other content";
      }
    }
    if (!check.reason.empty()) {
      alert = stop_with_alert(s, item.sequence, check.kind, check.reason, event_id, item.raw);
      out.stopped_at = item.sequence;
      out.stop_reason = "alert";
      out.alert_id = alert;
      out.detail = check.kind + ": " + check.reason;
      break;
    }
    const core::ves::Event &e = *check.event;
    if (same) {
      ++out.duplicates;
    } else {
      AppendResult r = ingest::store(e);
      if (r.duplicate) {
        ++out.duplicates;
      } else {
        skip_echo(s, e);
        apply_stored(e);
        ++out.applied;
      }
    }
    keep_receipt(s, e, item.sequence, *item.receipt, s.settings.sequencer_key.has_value());
    last_id = e.event_id;
    cursor = item.sequence + 1;
  }

  std::optional<std::string> gap;
  if (!alert && plan.stop != core::pull::Stop::none) {
    gap = std::string(core::pull::stop_name(plan.stop)) + ": " + plan.detail;
    out.stopped_at = plan.stop_at;
    out.stop_reason = core::pull::stop_name(plan.stop);
    out.detail = plan.detail;
    log_line("pg_ves: pull of " + stream_name(s) + " stopped at sequence number " +
             std::to_string(plan.stop_at) + ": " + plan.detail + "; it is read again from there");
  }
  static SavedPlan advance{
      "SELECT ves._pull_advance($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      9,
      {INT4OID, INT8OID, UUIDOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID},
      nullptr};
  Datum args[9] = {Int32GetDatum(s.id),
                   Int64GetDatum(cursor),
                   last_id ? safe::uuid_datum(to_pg_uuid(*last_id)) : Datum(0),
                   Int64GetDatum(plan.head),
                   Int64GetDatum(plan.served),
                   Int64GetDatum(out.applied),
                   Int64GetDatum(out.duplicates),
                   gap ? safe::text_datum(*gap) : Datum(0),
                   Int64GetDatum(plan.stop_at)};
  const char nulls[10] = {
      ' ', ' ', last_id ? ' ' : 'n', ' ', ' ', ' ', ' ', gap ? ' ' : 'n', gap ? ' ' : 'n', '\0'};
  safe::spi_run(advance, args, nulls, false, SPI_OK_SELECT);
  const std::int64_t streak = safe::spi_int64(0, 1, 0);
  if (gap && streak >= kGapStreakAlert) {
    // The same number missing pull after pull: the sequencer skipped it or
    // lost it. Never skipped here; an operator decides.
    out.alert_id = stop_with_alert(s, plan.stop_at, "pulled_sequence_gap",
                                   *gap + " (" + std::to_string(streak) + " pulls in a row)",
                                   std::nullopt, std::string());
    out.stop_reason = "alert";
  }
  out.cursor = cursor;
  out.head = std::max({out.head, plan.head, cursor - 1});
  return out;
}

}  // namespace
}  // namespace pgves::pg::pull

using namespace pgves::pg;

// ves._pull_once(destination_id int, since bigint, max_count int) -> jsonb:
// the C half of ves.pull_events (which checked the caller's rights): reads
// one page from the cursor (or `since`) holding no lock, then applies it.
PGVES_FUNCTION(ves_pull_once) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
    throw VesError(sqlstate::null_argument, "destination_id and max_count must not be NULL", {},
                   "Call ves.pull_events(source).");
  const int id = PG_GETARG_INT32(0);
  const bool has_since = !PG_ARGISNULL(1);
  const std::int64_t since = has_since ? PG_GETARG_INT64(1) : 0;
  const std::int64_t max_count = PG_GETARG_INT32(2);
  safe::spi_connect();
  std::vector<pull::Source> sources = pull::load_sources(id, true);
  if (sources.empty())
    throw VesError(sqlstate::not_a_source,
                   "destination " + std::to_string(id) + " is not a pull source", {},
                   "Give it the options pull, tenant_id and store_id.");
  const pull::Source &s = sources.front();
  safe::spi_finish();
  pull::Summary out;
  if (s.stopped) {
    safe::spi_connect();
    out = pull::apply_page(s, s.next_sequence, false, "{\"events\": []}");
    safe::spi_finish();
    PG_RETURN_JSONB_P(safe::jsonb_from_text(out.json()));
  }
  std::int64_t from = s.next_sequence;
  if (has_since && since != s.next_sequence) {
    if (!s.fresh)
      throw VesError(
          sqlstate::since_refused,
          "since " + std::to_string(since) + " is not the cursor of source \"" + s.name + "\" (" +
              std::to_string(s.next_sequence) + ")",
          "The cursor only ever moves past applied events; starting elsewhere would skip "
          "or repeat events.",
          "Omit since to pull from the cursor. To step past an event that does not "
          "verify, acknowledge its security alert with action => 'skip'.");
    from = since;
  }
  std::unique_ptr<pull::Transport> transport = pull::transport_for(s);
  pull::Transport::Page page = transport->fetch(s.tenant, s.store, from, max_count);
  if (!page.ok)
    throw VesError(sqlstate::pull_failed,
                   "source \"" + s.name + "\" could not be read: " + page.error, {},
                   "Nothing was applied. The sync worker retries by itself with backoff; "
                   "ves.pull_status shows its last error.");
  safe::spi_connect();
  out = pull::apply_page(s, from, has_since, page.body);
  safe::spi_finish();
  PG_RETURN_JSONB_P(safe::jsonb_from_text(out.json()));
}

// ves._pull_apply(destination_id int, from_sequence bigint, fresh_start
// boolean, page text) -> jsonb: applies a page the worker read.
PGVES_FUNCTION(ves_pull_apply) {
  for (int i = 0; i < 4; ++i)
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument, "arguments must not be NULL", {},
                     "The sync worker calls this; use ves.pull_events(source).");
  const int id = PG_GETARG_INT32(0);
  const std::int64_t from = PG_GETARG_INT64(1);
  const bool fresh_start = PG_GETARG_BOOL(2);
  const std::string body = safe::text_string(PG_GETARG_DATUM(3));
  safe::spi_connect();
  std::vector<pull::Source> sources = pull::load_sources(id, true);
  if (sources.empty())
    throw VesError(sqlstate::not_a_source,
                   "destination " + std::to_string(id) + " is not a pull source", {},
                   "Give it the options pull, tenant_id and store_id.");
  pull::Summary out = pull::apply_page(sources.front(), from, fresh_start, body);
  safe::spi_finish();
  PG_RETURN_JSONB_P(safe::jsonb_from_text(out.json()));
}

namespace pgves::pg::pull {
namespace {

struct State {
  std::int64_t next_at = 0;  // steady ms
  int failures = 0;
  int stops = 0;  // pulls in a row that stopped at a hole or a misordered number
};
std::map<int, State> states;
std::int64_t next_round_ms = 0;
std::uint64_t seen_epoch = 0;
constexpr std::int64_t kIdleCheckMs = 10000;

void record_failure(const Source &s, const std::string &error) {
  in_own_transaction("pg_ves: recording a failed pull", [&] {
    static SavedPlan plan{"SELECT ves._pull_failed($1, $2)", 2, {INT4OID, TEXTOID}, nullptr};
    Datum args[2] = {Int32GetDatum(s.id), safe::text_datum(error)};
    safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
  });
}

// Applies a page read from the source (or records why none was); returns
// when the source is due again (steady ms).
std::int64_t pulled(const Source &s, const Transport::Page &page) {
  State &st = states[s.id];
  const std::int64_t interval = s.options.interval_ms;
  if (!page.ok) {
    ++st.failures;
    log_line("pg_ves: pull of " + stream_name(s) + " failed (" + std::to_string(st.failures) +
             " in a row): " + page.error);
    record_failure(s, page.error);
    return steady_ms() + core::pull::backoff_ms(st.failures, interval, page.retry_after_ms);
  }
  std::string summary;
  bool ok = in_own_transaction("pg_ves: applying pulled events", [&] {
    static SavedPlan plan{
        "SELECT ves._pull_apply($1, $2, false, $3)::text", 3, {INT4OID, INT8OID, TEXTOID}, nullptr};
    Datum args[3] = {Int32GetDatum(s.id), Int64GetDatum(s.next_sequence),
                     safe::text_datum(page.body)};
    safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
    summary = safe::spi_text(0, 1);
  });
  if (!ok) {
    ++st.failures;
    record_failure(s, "the page could not be applied (see the server log)");
    return steady_ms() + core::pull::backoff_ms(st.failures, interval, 0);
  }
  st.failures = 0;
  // A full page read to its end: more may be waiting.
  const Value v = core::json::parse(summary);
  const Value *stop = v.find("stop_reason");
  const Value *pulled = v.find("pulled");
  const bool full = pulled && pulled->kind() == core::json::Kind::number &&
                    pulled->as_number() >= static_cast<double>(s.options.batch);
  if (stop && stop->kind() == core::json::Kind::string && stop->as_string() != "alert") {
    // Stopped at a hole or a misordered number: read again from there, later
    // each time.
    ++st.stops;
    return steady_ms() + core::pull::backoff_ms(st.stops, interval, 0);
  }
  st.stops = 0;
  if (full && stop && stop->is_null()) return steady_ms();
  return steady_ms() + interval;
}

// Pages requested on the worker's own engine (a ves_sequencer's over HTTP,
// a ves_postgres source's over libpq), beside its deliveries, by source id:
// the loop goes on delivering while they are in flight, and applies each
// once it has answered. Their tags: kPullTag, the request's number, the
// source's id.
constexpr std::uint64_t kPullTag = std::uint64_t{1} << 62;
struct Fetching {
  Source source;
  std::uint64_t number = 0;
  std::optional<HttpResult> answer;
};
std::map<int, Fetching> fetching;
std::uint64_t next_number = 1;

std::uint64_t tag_of(std::uint64_t number, int id) {
  return kPullTag | (number << 32) | static_cast<std::uint32_t>(id);
}

// Starts pulling a source that is due: its page requested on the engine.
// Returns when it is due again (steady ms; the far future while its page
// is in flight).
std::int64_t start_pull(HttpEngine &engine, Source s) {
  if (s.stopped) {
    states[s.id].failures = 0;
    // Looked at again: an acknowledgement resumes it.
    return steady_ms() + s.options.interval_ms;
  }
  const int id = s.id;
  const std::uint64_t number = next_number++;
  if (s.kind == "ves_postgres") {
    if (s.conninfo.empty()) return pulled(s, no_conninfo());
    remote_pg::start(engine, tag_of(number, id), remote_pg::Target{s.id, s.conninfo, s.timeout_ms},
                     kRemotePageSql,
                     remote_page_params(s.tenant, s.store, s.next_sequence, s.options.batch));
  } else {
    core::HttpRequest request =
        page_request(s, s.tenant, s.store, s.next_sequence, s.options.batch);
    engine.submit(tag_of(number, id), request, s.timeout_ms, kMaxPageBytes);
    forget_credentials(request);
  }
  fetching.insert_or_assign(id, Fetching{std::move(s), number, std::nullopt});
  return std::numeric_limits<std::int64_t>::max();
}

}  // namespace

void absorb(std::vector<HttpResult> &completed) {
  auto mine = [](const HttpResult &r) { return (r.tag & kPullTag) != 0 && (r.tag >> 63) == 0; };
  for (HttpResult &r : completed) {
    if (!mine(r)) continue;
    auto it = fetching.find(static_cast<int>(static_cast<std::uint32_t>(r.tag)));
    // The answer to a request forgotten after an error is of no use.
    if (it == fetching.end() || r.tag != tag_of(it->second.number, it->first)) continue;
    it->second.answer = std::move(r);
  }
  completed.erase(std::remove_if(completed.begin(), completed.end(), mine), completed.end());
}

void forget_fetches() { fetching.clear(); }

long worker_round(HttpEngine &engine) {
  // Pages that have come: applied, each in a transaction of its own.
  for (auto it = fetching.begin(); it != fetching.end() && !ShutdownRequestPending;) {
    if (!it->second.answer) {
      ++it;
      continue;
    }
    Fetching done = std::move(it->second);
    it = fetching.erase(it);
    const std::int64_t due =
        pulled(done.source, done.source.kind == "ves_postgres" ? remote_page_of(*done.answer)
                                                               : page_of(*done.answer));
    states[done.source.id].next_at = due;
    next_round_ms = std::min(next_round_ms, due);
  }
  const std::int64_t now = steady_ms();
  const std::uint64_t epoch = signals::destinations_epoch();
  if (now < next_round_ms && epoch == seen_epoch) return static_cast<long>(next_round_ms - now);
  // A destination was created or changed (an interval, a credential, a
  // resume): every source is read at once.
  if (epoch != seen_epoch) states.clear();
  seen_epoch = epoch;
  std::vector<Source> sources;
  bool loaded = in_own_transaction("pg_ves: looking for pull sources", [&] {
    try {
      sources = load_sources(std::nullopt, false);
    } catch (const core::Error &e) {
      throw VesError(sqlstate::internal, std::string("a pull source cannot be used: ") + e.what());
    }
  });
  if (!loaded) {
    next_round_ms = now + 5000;
    return 5000;
  }
  std::int64_t next = steady_ms() + kIdleCheckMs;
  std::map<int, State> kept;
  for (Source &s : sources) {
    if (ShutdownRequestPending) break;
    const int id = s.id;
    // A source whose page is in flight is applied when it comes.
    if (!fetching.count(id) && steady_ms() >= states[id].next_at)
      states[id].next_at = start_pull(engine, std::move(s));
    kept[id] = states[id];
    next = std::min(next, states[id].next_at);
  }
  states.swap(kept);  // forget sources that are gone or paused
  next_round_ms = next;
  const std::int64_t wait = next_round_ms - steady_ms();
  return static_cast<long>(std::max<std::int64_t>(wait, 0));
}

}  // namespace pgves::pg::pull
