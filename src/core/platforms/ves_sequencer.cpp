#include "core/platforms/ves_sequencer.hpp"

#include <cctype>
#include <cmath>

#include "core/base/error.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/json/canonical_json.hpp"
#include "core/ves/envelope.hpp"
#include "core/ves/pull.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace sequencer {

namespace {

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

std::string_view strip_0x(std::string_view s) {
  return s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0 ? s.substr(2) : s;
}

const std::string *string_member(const json::Value &object, std::string_view name) {
  if (object.kind() != json::Kind::object) return nullptr;
  const json::Value *v = object.find(name);
  return v && v->kind() == json::Kind::string ? &v->as_string() : nullptr;
}

bool digits(std::string_view s, std::size_t from, std::size_t n) {
  if (from + n > s.size()) return false;
  for (std::size_t i = from; i < from + n; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// RFC 3339 date-time with a zone (what chrono's to_rfc3339 writes): what
// PostgreSQL's timestamptz input reads back exactly.
bool is_rfc3339(std::string_view s) {
  if (!(digits(s, 0, 4) && s.size() > 19 && s[4] == '-' && digits(s, 5, 2) && s[7] == '-' &&
        digits(s, 8, 2) && (s[10] == 'T' || s[10] == 't') && digits(s, 11, 2) && s[13] == ':' &&
        digits(s, 14, 2) && s[16] == ':' && digits(s, 17, 2)))
    return false;
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    std::size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 9) return false;
  }
  std::string_view zone = s.substr(i);
  if (zone == "Z" || zone == "z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) &&
         zone[3] == ':' && digits(zone, 4, 2);
}

}  // namespace

Settings parse_settings(const json::Value *options) {
  Settings out;
  if (!options || options->kind() != json::Kind::object) return out;
  if (const json::Value *auth = options->find("auth"); auth && !auth->is_null()) {
    if (auth->kind() != json::Kind::string ||
        (auth->as_string() != "api_key" && auth->as_string() != "bearer"))
      throw OptionError("invalid_option", "auth must be \"api_key\" or \"bearer\"",
                        "\"api_key\" (the default) sends the secret as "
                        "'Authorization: ApiKey <secret>', \"bearer\" as 'Authorization: Bearer "
                        "<secret>'.");
    out.bearer = auth->as_string() == "bearer";
  }
  if (const json::Value *key = options->find("sequencer_public_key"); key && !key->is_null()) {
    const std::string_view hex =
        key->kind() == json::Kind::string ? strip_0x(key->as_string()) : std::string_view();
    if (hex.size() != 64 || !is_hex(hex))
      throw OptionError("invalid_option",
                        "sequencer_public_key must be 64 hex characters (an Ed25519 public key)",
                        "Give the public key the sequencer signs its receipts with, e.g. the "
                        "value of its VES_SEQUENCER_SIGNING_KEY's public half, as hex.");
    crypto::PublicKey32 k{};
    const auto bin = crypto::hex2bin(hex);
    std::copy(bin.begin(), bin.end(), k.begin());
    out.sequencer_key = k;
  }
  if (const json::Value *base = options->find("base_version"); base && !base->is_null()) {
    if (base->kind() != json::Kind::boolean)
      throw OptionError("invalid_option", "base_version must be true or false",
                        "true sends each event's base_version (the number of events of its "
                        "entity before it), so the sequencer refuses an event written on a "
                        "stale view with version_conflict; false (the default) sends none.");
    out.base_version = base->as_bool();
  }
  return out;
}

std::string ingest_body(const std::vector<std::string_view> &envelopes) {
  if (envelopes.empty()) throw Error("invalid_envelope", "an ingest request needs an event");
  std::string agent, body;
  for (std::string_view envelope : envelopes) {
    const json::Value e = json::parse(envelope);
    const std::string *id = string_member(e, "source_agent_id");
    if (!id) throw Error("invalid_envelope", "the envelope has no source_agent_id");
    if (body.empty()) {
      agent = *id;
      body = "{\"agentId\":" + jcs::canonicalize(json::Value(agent)) + ",\"events\":[";
    } else if (*id != agent) {
      throw Error("invalid_envelope",
                  "the events of one ingest request come from different agents");
    } else {
      body += ',';
    }
    body += envelope;
  }
  body += "]}";
  return body;
}

std::string ingest_body(std::string_view envelope) {
  return ingest_body(std::vector<std::string_view>{envelope});
}

std::string with_base_version(std::string_view envelope, std::int64_t base_version) {
  std::size_t end = envelope.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos || envelope[end] != '}' || base_version < 0)
    throw Error("invalid_envelope", "cannot add base_version to the envelope");
  const json::Value e = json::parse(envelope);
  if (e.kind() != json::Kind::object || e.find("base_version"))
    throw Error("invalid_envelope", "the envelope already has a base_version");
  std::string out(envelope.substr(0, end));
  out += ",\"base_version\":" + std::to_string(base_version) + "}";
  return out;
}

ReceiptCheck check_receipt(const json::Value &receipt, const ves::Event &event,
                           const Settings &settings) {
  ReceiptCheck out;
  const std::string *event_id = string_member(receipt, "eventId");
  if (!event_id || ves::parse_uuid(*event_id) != event.event_id) {
    out.reason = "the receipt is not for this event";
    return out;
  }
  const json::Value *seq = receipt.find("sequenceNumber");
  if (!seq || seq->kind() != json::Kind::number || seq->as_number() < 1 ||
      seq->as_number() > 9007199254740991.0 || std::floor(seq->as_number()) != seq->as_number()) {
    out.reason = "sequenceNumber is not a positive integer";
    return out;
  }
  const std::string *at = string_member(receipt, "sequencedAt");
  if (!at || !is_rfc3339(*at)) {
    out.reason = "sequencedAt is not an RFC 3339 time";
    return out;
  }
  const std::string *hash_hex = string_member(receipt, "receiptHash");
  const std::string_view hex = hash_hex ? strip_0x(*hash_hex) : std::string_view();
  if (hex.size() != 64 || !is_hex(hex)) {
    out.reason = "receiptHash is not 32 bytes of hex";
    return out;
  }
  const ves::Hash32 expected =
      ves::receipt_hash(event.tenant_id, event.store_id, event.event_id,
                        static_cast<std::uint64_t>(seq->as_number()), ves::signing_hash(event));
  const auto given = crypto::hex2bin(hex);
  if (!crypto::constant_time_equal(given, expected)) {
    out.reason = "receiptHash is not the VES v1 receipt hash of this event and sequence number";
    return out;
  }
  if (settings.sequencer_key) {
    const std::string *alg = string_member(receipt, "signatureAlg");
    const std::string *sig = string_member(receipt, "sequencerSignature");
    const std::string_view sig_hex = sig ? strip_0x(*sig) : std::string_view();
    if (!alg || *alg != "ed25519" || sig_hex.size() != 128 || !is_hex(sig_hex)) {
      out.reason = "the receipt carries no Ed25519 sequencerSignature";
      return out;
    }
    crypto::Signature64 signature{};
    const auto bin = crypto::hex2bin(sig_hex);
    std::copy(bin.begin(), bin.end(), signature.begin());
    if (!crypto::verify_detached(signature, expected, *settings.sequencer_key)) {
      out.reason = "sequencerSignature does not verify under sequencer_public_key";
      return out;
    }
    out.signature_verified = true;
  }
  out.valid = true;
  return out;
}

}  // namespace sequencer

namespace {

// "what" of a refusal body: the server's {"error": text, "code"} (auth),
// {"error": {"code", "message"}} (API errors) or plain text.
std::string refusal_detail(std::string_view body) {
  try {
    const json::Value v = json::parse(body);
    if (v.kind() == json::Kind::object) {
      if (const json::Value *error = v.find("error")) {
        if (error->kind() == json::Kind::string) {
          const json::Value *code = v.find("code");
          if (code && code->kind() == json::Kind::string)
            return code->as_string() + " (" + error->as_string() + ")";
          return error->as_string();
        }
        if (error->kind() == json::Kind::object) {
          const json::Value *code = error->find("code");
          const json::Value *message = error->find("message");
          std::string out = code && code->kind() == json::Kind::string ? code->as_string() : "";
          if (message && message->kind() == json::Kind::string)
            out += (out.empty() ? "" : " (") + message->as_string() + (out.empty() ? "" : ")");
          if (!out.empty()) return out;
        }
      }
    }
  } catch (const Error &) {
  }
  std::string text(body.substr(0, 200));
  for (char &c : text)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return text;
}

RowVerdict permanent(std::string reason) {
  RowVerdict v;
  v.verdict = Verdict::permanent;
  v.reason = std::move(reason);
  return v;
}

// The verdict for one pushed event from a 200 answer.
RowVerdict row_verdict(const json::Value &answer, const OutboxRow &row,
                       const sequencer::Settings &settings) {
  const ves::Event event = ves::parse_envelope(row.body);
  const ves::Uuid id = event.event_id;
  auto for_this_event = [&](const json::Value &item, std::string_view key) {
    const json::Value *v = item.kind() == json::Kind::object ? item.find(key) : nullptr;
    if (!v || v->kind() != json::Kind::string) return false;
    try {
      return ves::parse_uuid(v->as_string()) == id;
    } catch (const Error &) {
      return false;
    }
  };
  if (const json::Value *receipts = answer.find("receipts");
      receipts && receipts->kind() == json::Kind::array) {
    for (const json::Value &r : receipts->as_array()) {
      if (!for_this_event(r, "eventId")) continue;
      const sequencer::ReceiptCheck check = sequencer::check_receipt(r, event, settings);
      if (!check.valid) return permanent("receipt does not verify: " + check.reason);
      RowVerdict v;
      v.verdict = Verdict::success;
      v.receipt = jcs::canonicalize(r);
      v.receipt_signature_verified = check.signature_verified;
      return v;
    }
  }
  if (const json::Value *rejections = answer.find("rejections");
      rejections && rejections->kind() == json::Kind::array) {
    for (const json::Value &r : rejections->as_array()) {
      if (!for_this_event(r, "event_id")) continue;
      const json::Value *reason = r.find("reason");
      const json::Value *message = r.find("message");
      std::string why =
          reason && reason->kind() == json::Kind::string ? reason->as_string() : "unknown";
      const bool version_conflict = why.rfind("version_conflict", 0) == 0;
      // duplicate_event_id here means other content under the same id (an
      // identical re-push comes back as its receipt); every rejection is the
      // sequencer's verdict on the event itself, which resending cannot change.
      if (message && message->kind() == json::Kind::string)
        why += " (" + message->as_string() + ")";
      // Except a version conflict: the event was written on a view of its
      // entity the sequencer has moved past. That is for a person to decide.
      if (version_conflict) {
        RowVerdict v;
        v.verdict = Verdict::conflict;
        v.reason = "version conflict at the sequencer: " + why;
        return v;
      }
      return permanent("rejected by the sequencer: " + why);
    }
  }
  return permanent("the sequencer's answer has neither a receipt nor a rejection for the event");
}

}  // namespace

std::vector<RowVerdict> sequencer::answer_verdicts(std::string_view body,
                                                   const std::vector<OutboxRow> &rows,
                                                   const Settings &settings) {
  const std::size_t n = rows.size();
  json::Value parsed;
  try {
    parsed = json::parse(body);
  } catch (const Error &) {
  }
  if (parsed.kind() != json::Kind::object)
    return std::vector<RowVerdict>(
        n, permanent("the sequencer's answer is not a JSON object (or was cut short)"));
  std::vector<RowVerdict> out;
  out.reserve(n);
  for (const OutboxRow &row : rows) {
    try {
      out.push_back(row_verdict(parsed, row, settings));
    } catch (const Error &e) {
      out.push_back(permanent(std::string("cannot check the sequencer's answer: ") + e.what()));
    }
  }
  return out;
}

void VesSequencerAdapter::validate_url(std::string_view url) const {
  adapters::validate_http_url(url);
}

std::vector<HeaderSpec> VesSequencerAdapter::validate_options(const json::Value &options) const {
  if (const std::string *secret = adapters::secret_option(options)) {
    if (secret->empty())
      throw OptionError("invalid_option", "the sequencer credential must not be empty",
                        "Pass the sequencer's API key (ss_...) or token as \"secret\".");
    for (char c : *secret)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
        throw OptionError("invalid_option",
                          "the sequencer credential contains a space or control character",
                          "Pass the API key or token exactly as the sequencer issued it.");
  }
  (void)sequencer::parse_settings(&options);
  (void)pull::parse_options(options);
  std::vector<HeaderSpec> headers = adapters::validate_header_option(options);
  // The credential is sent as Authorization; a second one would leave the
  // sequencer to pick either.
  for (const HeaderSpec &h : headers) {
    std::string name = h.name;
    for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "authorization" || name == "x-api-key")
      throw OptionError("invalid_header",
                        "a ves_sequencer destination sends its credential itself; header " +
                            h.name + " is not allowed",
                        "Pass the API key or token as the \"secret\" option and choose \"auth\".");
  }
  return headers;
}

std::vector<PlatformRequest> sequencer::ingest_requests(const std::vector<OutboxRow> &rows,
                                                        const Settings &settings) {
  // One request per (tenant, store, source agent), the rows in their order:
  // the sequencer takes one stream per request, from the agent it names.
  std::vector<std::string> keys;
  std::vector<PlatformRequest> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json::Value e = json::parse(rows[i].body);
    std::string key;
    for (std::string_view name : {"tenant_id", "store_id", "source_agent_id"}) {
      const std::string *v = string_member(e, name);
      if (!v) throw Error("invalid_envelope", "the envelope has no " + std::string(name));
      key += *v + '/';
    }
    std::size_t at = 0;
    while (at < keys.size() && (keys[at] != key || out[at].rows.size() >= max_events_per_request))
      ++at;
    if (at == keys.size()) {
      keys.push_back(key);
      out.emplace_back();
    }
    out[at].rows.push_back(i);
  }
  for (PlatformRequest &r : out) {
    std::vector<std::string> envelopes;
    for (std::size_t i : r.rows) {
      const OutboxRow &row = rows[i];
      envelopes.push_back(settings.base_version && row.base_check
                              ? with_base_version(row.body, row.entity_version - 1)
                              : std::string(row.body));
    }
    std::vector<std::string_view> views(envelopes.begin(), envelopes.end());
    r.http.headers.emplace_back("content-type", "application/json");
    r.http.body = ingest_body(views);
  }
  return out;
}

std::vector<PlatformRequest> VesSequencerAdapter::build_requests(const Endpoint &endpoint,
                                                                 const std::vector<OutboxRow> &rows,
                                                                 std::int64_t) const {
  const sequencer::Settings settings = sequencer::parse_settings(endpoint.options);
  std::string url = endpoint.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += sequencer::ingest_path;
  validate_url(url);
  std::vector<PlatformRequest> out = sequencer::ingest_requests(rows, settings);
  for (PlatformRequest &r : out) {
    r.http.url = url;
    if (!endpoint.secret.empty())
      r.http.headers.emplace_back("authorization",
                                  (settings.bearer ? "Bearer " : "ApiKey ") + endpoint.secret);
    append_extra_headers(r.http, endpoint.headers);
  }
  return out;
}

std::vector<RowVerdict> VesSequencerAdapter::classify(const Answer &answer, std::size_t row_count,
                                                      std::int64_t now_unix_ms) const {
  static const std::string empty;
  static const std::vector<std::pair<std::string, std::string>> no_headers;
  std::vector<OutboxRow> rows(row_count);
  return classify_rows({empty, empty, no_headers}, answer, rows, now_unix_ms);
}

std::vector<RowVerdict> VesSequencerAdapter::classify_rows(const Endpoint &endpoint,
                                                           const Answer &answer,
                                                           const std::vector<OutboxRow> &rows,
                                                           std::int64_t now_unix_ms) const {
  const std::size_t n = rows.size();
  if (answer.transport_error || answer.status >= 500 || answer.status == 429 ||
      answer.status == 408)
    return adapters::classify_status(answer, n, now_unix_ms);
  if (answer.status == 401 || answer.status == 403)
    return std::vector<RowVerdict>(
        n, permanent("unauthorized: HTTP " + std::to_string(answer.status) + " " +
                     refusal_detail(answer.body)));
  if (answer.status != 200) {
    std::vector<RowVerdict> out = adapters::classify_status(answer, n, now_unix_ms);
    for (RowVerdict &v : out)
      if (v.verdict == Verdict::permanent)
        v.reason = "HTTP " + std::to_string(answer.status) + " " + refusal_detail(answer.body);
    return out;
  }
  return sequencer::answer_verdicts(answer.body, rows, sequencer::parse_settings(endpoint.options));
}

InboundCheck VesSequencerAdapter::verify_inbound(std::string_view, const InboundMessage &,
                                                 std::int64_t, std::int64_t) const {
  throw Error("unsupported",
              "destinations of kind ves_sequencer receive nothing but the answers to their "
              "pushes; their receipts are verified as they arrive");
}

}  // namespace pgves::core
