// Destinations of kind "ves_sequencer": a VES v1 sequencer with the HTTP API
// of StateSet's server (test/mock/README.md, "Sequencer API as implemented by
// StateSet's server"). Rows of one stream and agent go together in a POST to
// <url>/api/v1/ves/events/ingest with body {"agentId", "events": [envelopes]};
// the answer's receipt for the event is verified (its hash, and its
// signature when the destination names the sequencer's public key) and
// handed back to be stored in ves.sequencer_receipts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/platforms/adapter.hpp"
#include "core/ves/ves.hpp"

namespace pgves::core {

namespace sequencer {

// The path appended to a destination's url.
constexpr std::string_view ingest_path = "/api/v1/ves/events/ingest";

// What a destination's kind options say: how the secret is sent and which
// key must have signed the receipts.
struct Settings {
  bool bearer = false;                               // "auth": "bearer"; else "api_key"
  std::optional<crypto::PublicKey32> sequencer_key;  // "sequencer_public_key"
  bool base_version = false;                         // "base_version": send each event's base
};

// Most events one ingest request carries (the sequencer takes up to 1000).
constexpr std::size_t max_events_per_request = 100;

// Parses and checks the kind options (a JSON object, or nullptr for none).
// Throws OptionError("invalid_option").
Settings parse_settings(const json::Value *options);

// The ingest body for exported envelopes of one stream and one agent:
// {"agentId": their source_agent_id, "events": [envelopes]}. Throws Error
// when an envelope has no source_agent_id or the agents differ.
std::string ingest_body(const std::vector<std::string_view> &envelopes);
std::string ingest_body(std::string_view envelope);

// The envelope with "base_version": n added (the number of events of its
// entity the sequencer must have accepted before it). The envelope must be a
// JSON object without that member, as ves.export_event writes it.
std::string with_base_version(std::string_view envelope, std::int64_t base_version);

// How one receipt of an answer checks against the event it is for.
struct ReceiptCheck {
  bool valid = false;
  bool signature_verified = false;  // signed by settings.sequencer_key
  std::string reason;               // why it does not verify
};

// receipt is one object of the answer's "receipts"; envelope the event that
// was pushed. The receipt hash must be VES v1's over the event's tenant,
// store, id, the receipt's sequence number and the event's signing hash;
// with a sequencer key, sequencerSignature must be its Ed25519 signature of
// that hash.
ReceiptCheck check_receipt(const json::Value &receipt, const ves::Event &event,
                           const Settings &settings);

// The ingest requests for rows: one per (tenant, store, source agent), at
// most max_events_per_request rows each, in the rows' order, with the body
// and content type set (each kind adds where and how it sends them). With
// settings.base_version every envelope whose row allows it carries its base.
std::vector<PlatformRequest> ingest_requests(const std::vector<OutboxRow> &rows,
                                             const Settings &settings);

// The verdict for each pushed row from a 200 ingest answer (the same object
// whether it came over HTTP or from ves.sequence_events on a ves_postgres
// destination): success with the verified receipt, or permanent with the
// rejection or why the receipt does not verify. rows are those pushed.
std::vector<RowVerdict> answer_verdicts(std::string_view body, const std::vector<OutboxRow> &rows,
                                        const Settings &settings);

}  // namespace sequencer

// The adapter: options "secret" (the API key or token), "auth" and
// "sequencer_public_key", and "headers"; a pull source also "pull",
// "store_id" (with the common "tenant_id"), "pull_interval_ms" and
// "pull_batch" (core/ves/pull.hpp).
class VesSequencerAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "ves_sequencer"; }
  std::string_view description() const override { return "VES v1 sequencer, StateSet API"; }
  std::vector<std::string_view> option_names() const override {
    return {"auth", "sequencer_public_key", "base_version", "store_id",
            "pull", "pull_interval_ms",     "pull_batch"};
  }
  void validate_url(std::string_view url) const override;
  // Events of one (tenant, store) and source agent share a request.
  std::size_t max_rows_per_request() const override { return sequencer::max_events_per_request; }
  std::vector<HeaderSpec> validate_options(const json::Value &options) const override;
  std::vector<PlatformRequest> build_requests(const Endpoint &endpoint,
                                              const std::vector<OutboxRow> &rows,
                                              std::int64_t now_unix_ms) const override;
  // Without the rows no receipt can be checked: every 200 is a permanent
  // failure here; the deliverer calls classify_rows.
  std::vector<RowVerdict> classify(const Answer &answer, std::size_t row_count,
                                   std::int64_t now_unix_ms) const override;
  std::vector<RowVerdict> classify_rows(const Endpoint &endpoint, const Answer &answer,
                                        const std::vector<OutboxRow> &rows,
                                        std::int64_t now_unix_ms) const override;
  InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                              std::int64_t now_unix_ms, std::int64_t tolerance_s) const override;
};

}  // namespace pgves::core
