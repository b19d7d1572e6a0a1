#include "core/platforms/webhook.hpp"

#include <cctype>

#include "core/base/error.hpp"
#include "core/platforms/standard_webhooks.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

const std::string *header(const InboundMessage &message, std::string_view name) {
  for (const auto &h : message.headers)
    if (same_name(h.first, name)) return &h.second;
  return nullptr;
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

HttpRequest build_webhook_request(
    std::string url, const std::string &secret, const std::string &msg_id, std::int64_t timestamp_s,
    std::string body, const std::vector<std::pair<std::string, std::string>> &extra_headers) {
  validate_url(url);
  if (msg_id.empty()) throw Error("invalid_header", "webhook-id must not be empty");
  validate_header("webhook-id", msg_id);
  const std::string timestamp = std::to_string(timestamp_s);

  HttpRequest request;
  request.headers.emplace_back("content-type", "application/json");
  request.headers.emplace_back("webhook-id", msg_id);
  request.headers.emplace_back("webhook-timestamp", timestamp);
  if (!secret.empty())
    request.headers.emplace_back("webhook-signature",
                                 webhooks::sign(secret, msg_id, timestamp, body));
  append_extra_headers(request, extra_headers);
  request.url = std::move(url);
  request.body = std::move(body);
  return request;
}

void validate_webhook_secret(std::string_view secret) {
  if (secret.rfind("whsec_", 0) != 0 && secret.rfind("whsk_", 0) != 0)
    throw Error("invalid_webhook_secret",
                "a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519) followed by base64");
  if (secret == "whsec_" || secret == "whsk_")
    throw Error("invalid_webhook_secret", "the webhook secret has nothing after its prefix");
  // Signing a fixed message decodes the key exactly as delivery will.
  (void)webhooks::sign(secret, "msg", "0", "{}");
}

void WebhookAdapter::validate_url(std::string_view url) const { adapters::validate_http_url(url); }

std::vector<HeaderSpec> WebhookAdapter::validate_options(const json::Value &options) const {
  if (const std::string *secret = adapters::secret_option(options)) {
    try {
      validate_webhook_secret(*secret);
    } catch (const Error &) {
      // The detailed message may describe the secret; say only what is expected.
      throw OptionError(
          "invalid_option",
          "a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519) followed by base64",
          "Use the secret your endpoint gave you, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.");
    }
  }
  return adapters::validate_header_option(options);
}

std::vector<PlatformRequest> WebhookAdapter::build_requests(const Endpoint &endpoint,
                                                            const std::vector<OutboxRow> &rows,
                                                            std::int64_t now_unix_ms) const {
  return adapters::one_request_per_row(rows, [&](const OutboxRow &row) {
    return build_webhook_request(endpoint.url, endpoint.secret, std::string(row.event_id),
                                 now_unix_ms / 1000, std::string(row.body), endpoint.headers);
  });
}

std::vector<RowVerdict> WebhookAdapter::classify(const Answer &answer, std::size_t row_count,
                                                 std::int64_t now_unix_ms) const {
  return adapters::classify_status(answer, row_count, now_unix_ms);
}

InboundCheck WebhookAdapter::verify_inbound(std::string_view key, const InboundMessage &message,
                                            std::int64_t now_unix_ms,
                                            std::int64_t tolerance_s) const {
  const std::string *id = header(message, "webhook-id");
  const std::string *timestamp = header(message, "webhook-timestamp");
  const std::string *signature = header(message, "webhook-signature");
  if (!id || !timestamp || !signature)
    return {false, "webhook-id, webhook-timestamp and webhook-signature are all required"};
  if (!all_digits(*timestamp)) return {false, "webhook-timestamp is not a number of seconds"};
  // A captured message replayed later is refused, however valid its signature.
  const std::int64_t age_s = now_unix_ms / 1000 - std::stoll(*timestamp);
  if (age_s > tolerance_s || -age_s > tolerance_s)
    return {false, "webhook-timestamp is more than " + std::to_string(tolerance_s) +
                       " seconds away from now"};
  if (!webhooks::verify(key, *id, *timestamp, message.body, *signature))
    return {false, "no webhook-signature matches the key"};
  return {true, {}};
}

}  // namespace pgves::core
