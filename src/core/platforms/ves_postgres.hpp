// Destinations of kind "ves_postgres": another pg_ves database acting as the
// VES sequencer, reached over libpq (src/pg/sync/remote_pg.hpp). A request
// carries the rows of one (tenant, store) and one source agent as the ingest
// body {"agentId", "events": [...]}; the worker runs
// SELECT ves.sequence_events(agentId, body) on the remote and the answer is
// judged exactly as a ves_sequencer destination's (sequencer::answer_verdicts).
#pragma once

#include "core/platforms/adapter.hpp"
#include "core/platforms/ves_sequencer.hpp"

namespace pgves::core {

// The answers the PostgreSQL layer gives the adapter for one call: 200 with
// the JSON that ves.sequence_events returned; transport_error for a
// connection that failed or timed out (retried); ves_postgres_refused with
// the remote's "SQLSTATE: message" as the body for an error retrying cannot
// mend (permanent).
constexpr long ves_postgres_refused = 400;

// The adapter: options "conninfo" (a libpq connection string, sealed as a
// credential) and "sequencer_public_key".
class VesPostgresAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "ves_postgres"; }
  std::string_view description() const override {
    return "another pg_ves database as VES sequencer, over libpq";
  }
  std::vector<std::string_view> option_names() const override {
    return {"conninfo", "sequencer_public_key", "base_version", "store_id",
            "pull",     "pull_interval_ms",     "pull_batch"};
  }
  std::vector<std::string_view> secret_option_names() const override { return {"conninfo"}; }
  bool over_libpq() const override { return true; }
  std::size_t max_rows_per_request() const override { return sequencer::max_events_per_request; }
  // The url only names the remote for operators (a postgresql:// URI); it
  // must not carry a password, which belongs in conninfo.
  void validate_url(std::string_view url) const override;
  std::vector<HeaderSpec> validate_options(const json::Value &options) const override;
  std::vector<PlatformRequest> build_requests(const Endpoint &endpoint,
                                              const std::vector<OutboxRow> &rows,
                                              std::int64_t now_unix_ms) const override;
  std::vector<RowVerdict> classify(const Answer &answer, std::size_t row_count,
                                   std::int64_t now_unix_ms) const override;
  std::vector<RowVerdict> classify_rows(const Endpoint &endpoint, const Answer &answer,
                                        const std::vector<OutboxRow> &rows,
                                        std::int64_t now_unix_ms) const override;
  InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                              std::int64_t now_unix_ms, std::int64_t tolerance_s) const override;
};

}  // namespace pgves::core
