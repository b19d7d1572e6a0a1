// ves.export_event and ves.ingest_event: events as VES v1 JSON envelopes.
#include "core/json/canonical_json.hpp"
#include "core/ves/envelope.hpp"
#include "core/ves/timestamp.hpp"
#include "core/json/json.hpp"
#include "pg/store/append.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/base/tenant.hpp"
#include "pg/sync/alerts.hpp"
#include "pg/store/ingest.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

using namespace pgves::pg;

namespace {

std::string uuid_string(const pgves::core::ves::Uuid &u) {
  return pgves::core::ves::format_uuid(u);
}

// A refused envelope is a security alert (alerts.hpp): it outlives the
// error that refuses it.
void alert_refused(const pgves::core::ves::Event &e, const char *kind, const std::string &reason,
                   const Jsonb *envelope) {
  const std::string raw = jsonb_text(envelope);
  alerts::Alert a;
  a.kind = kind;
  a.source = "ves.ingest_event";
  a.reason = reason;
  a.raw = raw;
  a.tenant = to_pg_uuid(e.tenant_id);
  a.store = to_pg_uuid(e.store_id);
  a.event_id = to_pg_uuid(e.event_id);
  alerts::report(a);
}

}  // namespace

// ves.export_event(event_id uuid) -> jsonb: the VES v1 envelope, hashes and
// signature as 0x-prefixed lowercase hex.
PGVES_FUNCTION(ves_export_event) {
  StoredEvent stored = stored_event_argument(fcinfo, 0);
  stored.event.payload = pgves::core::json::parse(stored.payload_text);
  // Built after SPI_finish, in the caller's memory: SPI's would be freed.
  PG_RETURN_JSONB_P(jsonb_from_text(pgves::core::ves::export_envelope(stored.event)));
}

namespace pgves::pg::ingest {

std::optional<Refusal> check_content(const pgves::core::ves::Event &e) {
  if (e.payload_kind != 0 || !e.payload)
    return Refusal{"",
                   sqlstate::invalid_envelope,
                   "only plaintext payloads (payload_kind 0) can be ingested",
                   "",
                   "Decrypt the payload first; encrypted payloads are not stored yet.",
                   "the payload is not plaintext"};
  if (e.payload->kind() != pgves::core::json::Kind::object)
    return Refusal{"",
                   sqlstate::invalid_payload,
                   "the envelope's payload must be a JSON object",
                   "",
                   "pg_ves stores object payloads only.",
                   "the payload is not a JSON object"};
  try {
    pgves::core::ves::check_payload_hashes(e);
  } catch (const pgves::core::Error &err) {
    return Refusal{"event_payload_hash",
                   sqlstate::verification_failed,
                   err.what(),
                   "core error: " + err.code(),
                   "",
                   err.what()};
  }
  return std::nullopt;
}

std::optional<Refusal> check_signature(const pgves::core::ves::Event &e,
                                       std::string_view sequenced_at) {
  KeyRegistry keys;
  const KeyRegistry::Key &key = keys.lookup(e.tenant_id, e.source_agent_id, e.agent_key_id);
  std::string who =
      "agent " + uuid_string(e.source_agent_id) + " key " + std::to_string(e.agent_key_id);
  if (!key.found)
    return Refusal{"event_key",
                   sqlstate::unknown_key,
                   "the event is signed by an unknown key: " + who,
                   "",
                   "Register the agent's public key with ves.register_agent_key first.",
                   "signed by an unknown key: " + who};
  if (!key.revoked_at.empty() && e.created_at >= key.revoked_at)
    return Refusal{
        "event_key",
        sqlstate::unknown_key,
        "the event is signed by a revoked key: " + who,
        "The key was revoked at " + key.revoked_at + "; the event is dated " + e.created_at + ".",
        "Ask the agent to sign with its current key.",
        "signed by a revoked key: " + who};
  if (!key.revoked_at.empty() && !sequenced_at.empty()) {
    const std::int64_t at = pgves::core::rfc3339_unix_ms(sequenced_at);
    const std::int64_t revoked = pgves::core::rfc3339_unix_ms(key.revoked_at);
    if (at != 0 && revoked != 0 && at >= revoked)
      return Refusal{"event_key",
                     sqlstate::unknown_key,
                     "the event was sequenced after its key was revoked: " + who,
                     "The key was revoked at " + key.revoked_at +
                         "; the sequencer took the event in at " + std::string(sequenced_at) +
                         " (the event is dated " + e.created_at + ").",
                     "Ask the agent to sign with its current key.",
                     "sequenced at " + std::string(sequenced_at) +
                         ", after the key was revoked at " + key.revoked_at + ": " + who};
  }
  if (!pgves::core::ves::verify_signature(e, key.public_key))
    return Refusal{"event_signature",
                   sqlstate::verification_failed,
                   "the event's signature does not verify: " + who,
                   "",
                   "The envelope was altered or signed with another key; it was not stored.",
                   "the signature does not verify: " + who};
  return std::nullopt;
}

AppendResult store(const pgves::core::ves::Event &e) {
  AppendInput in{};
  in.tenant = to_pg_uuid(e.tenant_id);
  in.store = to_pg_uuid(e.store_id);
  in.has_id = true;
  in.id = to_pg_uuid(e.event_id);
  in.presigned = true;
  in.sig.agent_id = to_pg_uuid(e.source_agent_id);
  in.sig.key_id = static_cast<int32>(e.agent_key_id);
  std::snprintf(in.sig.created_at, sizeof in.sig.created_at, "%s", e.created_at.c_str());
  std::memcpy(in.sig.payload_plain_hash, e.payload_plain_hash.data(), 32);
  std::memcpy(in.sig.agent_signature, e.agent_signature.data(), 64);
  const std::string payload = pgves::core::jcs::canonicalize(*e.payload);
  return pg_call([&] {
    in.entity_type = cstring_to_text_with_len(e.entity_type.data(), e.entity_type.size());
    in.entity_id = cstring_to_text_with_len(e.entity_id.data(), e.entity_id.size());
    in.event_type = cstring_to_text_with_len(e.event_type.data(), e.event_type.size());
    in.payload = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(payload.c_str())));
    in.metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
    in.source = cstring_to_text("ves");
    AppendResult r = append_one(in);
    if (!r.duplicate) notify_appended();
    return r;
  });
}

}  // namespace pgves::pg::ingest

// ves.ingest_event(envelope jsonb) -> (event_id, position, duplicate).
// Verifies the payload hash and the agent's signature against the key
// registry, then appends the event as it was signed. The same event id with
// the same content returns the original; with other content it is refused.
PGVES_FUNCTION(ves_ingest_event) {
  if (PG_ARGISNULL(0))
    throw VesError(sqlstate::null_argument, "envelope must not be NULL", {},
                   "Pass a VES v1 event envelope.");
  Jsonb *envelope = PG_GETARG_JSONB_P(0);
  pgves::core::ves::Event e = pgves::core::ves::parse_envelope(jsonb_text(envelope));
  auto refuse = [&](const ingest::Refusal &r) {
    if (!r.alert_kind.empty()) alert_refused(e, r.alert_kind.c_str(), r.reason, envelope);
    throw VesError(r.sqlstate, r.message, r.detail, r.hint);
  };
  if (auto r = ingest::check_content(e)) refuse(*r);

  safe::check_tenant_access(to_pg_uuid(e.tenant_id));
  safe::spi_connect();
  // A sequencer's time, where the envelope carries one, also counts
  // against a revoked key.
  const std::string sequenced_at = e.sequencer_receipt ? e.sequencer_receipt->sequenced_at
                                   : e.sequenced_at    ? *e.sequenced_at
                                                       : std::string();
  if (auto r = ingest::check_signature(e, sequenced_at)) refuse(*r);
  AppendResult r = ingest::store(e);
  safe::spi_finish();
  Datum values[3] = {safe::uuid_datum(r.event_id), Int64GetDatum(r.position),
                     BoolGetDatum(r.duplicate)};
  bool nulls[3] = {false, false, false};
  return safe::composite_result(fcinfo, values, nulls);
}
