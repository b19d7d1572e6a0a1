#include "core/platforms/adapter.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

const char *to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::success:
      return "success";
    case Verdict::retry:
      return "retry";
    case Verdict::permanent:
      return "permanent";
    case Verdict::gone:
      return "gone";
    case Verdict::reauthenticate:
      return "reauthenticate";
    case Verdict::stale:
      return "stale";
    case Verdict::conflict:
      return "conflict";
  }
  return "unknown";
}

Classified to_classified(const RowVerdict &verdict) {
  switch (verdict.verdict) {
    case Verdict::success:
      return {Outcome::synced};
    case Verdict::retry:
      return {Outcome::retry, verdict.retry_after_ms};
    case Verdict::reauthenticate:
      return {Outcome::retry};
    case Verdict::permanent:
    case Verdict::stale:
      return {Outcome::permanent};
    case Verdict::gone:
      return {Outcome::gone};
    case Verdict::conflict:
      // The destination answered and judged the event: healthy, and nothing
      // to retry. The deliverer records the row as 'conflict'.
      return {Outcome::synced};
  }
  return {Outcome::permanent};
}

std::string describe_kinds() {
  std::string out;
  for (std::string_view kind : adapter_kinds()) {
    if (!out.empty()) out += ", ";
    out.append(kind).append(" (").append(find_adapter(kind)->description()).append(")");
  }
  return out;
}

namespace adapters {

void validate_http_url(std::string_view url) {
  try {
    core::validate_url(url);
  } catch (const Error &e) {
    throw OptionError("invalid_url", e.what(),
                      "Give an http:// or https:// URL with a host and no spaces, e.g. "
                      "https://example.com/hooks/pg-ves.");
  }
  if (url_has_userinfo(url))
    throw OptionError(
        "invalid_url", "destination url must not carry a user name or password",
        "The url is stored in plain text; send credentials in a secret header instead, e.g. "
        "{\"headers\": {\"Authorization\": {\"value\": \"Basic ...\", \"secret\": true}}}.");
}

std::vector<HeaderSpec> validate_header_option(const json::Value &options) {
  const json::Value *headers = options.find("headers");
  if (!headers) return {};
  try {
    return parse_header_option(*headers);
  } catch (const Error &e) {
    throw OptionError(
        "invalid_header", e.what(),
        "headers is an object of names (RFC 9110 token characters) to string values "
        "without control characters; a secret one is {\"value\": \"...\", \"secret\": true}.");
  }
}

const std::string *secret_option(const json::Value &options) {
  const json::Value *secret = options.find("secret");
  if (!secret || secret->is_null()) return nullptr;
  if (secret->kind() != json::Kind::string)
    throw OptionError("invalid_option", "the destination secret must be a string",
                      "Pass the secret your endpoint gave you as a JSON string.");
  return &secret->as_string();
}

std::vector<RowVerdict> classify_status(const Answer &answer, std::size_t row_count,
                                        std::int64_t now_unix_ms, StatusRules rules) {
  RowVerdict v;
  if (answer.transport_error) {
    v.verdict = Verdict::retry;
  } else if (rules.reauthenticate_on_401 && answer.status == 401) {
    v.verdict = Verdict::reauthenticate;
    v.reason = "HTTP 401: the credential was refused";
  } else if (rules.stale_on_409_412 && (answer.status == 409 || answer.status == 412)) {
    v.verdict = Verdict::stale;
    v.reason = "HTTP " + std::to_string(answer.status) +
               ": the platform's version changed since this row was written";
  } else {
    const Classified c = classify_http(answer.status, answer.retry_after, now_unix_ms);
    switch (c.outcome) {
      case Outcome::synced:
        v.verdict = Verdict::success;
        break;
      case Outcome::retry:
        v.verdict = Verdict::retry;
        v.retry_after_ms = c.retry_after_ms;
        break;
      case Outcome::permanent:
        v.verdict = Verdict::permanent;
        v.reason = "HTTP " + std::to_string(answer.status);
        break;
      case Outcome::gone:
        v.verdict = Verdict::gone;
        v.reason = "HTTP 410: the endpoint is gone";
        break;
    }
  }
  return std::vector<RowVerdict>(row_count, v);
}

}  // namespace adapters

}  // namespace pgves::core
