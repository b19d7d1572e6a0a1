// Destinations of kind "webhook": Standard Webhooks deliveries, one POST per
// outbox row, signed with the destination's secret.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/delivery/http_request.hpp"
#include "core/platforms/adapter.hpp"

namespace pgves::core {

// A Standard Webhooks delivery: content-type: application/json, webhook-id,
// webhook-timestamp (decimal seconds) and, when secret is non-empty,
// webhook-signature from webhooks::sign() (v1 for whsec_, v1a for whsk_
// secrets), followed by extra_headers. msg_id must not be empty.
// Throws Error("invalid_url"), Error("invalid_header") or, for a malformed
// secret, Error("invalid_webhook_secret").
HttpRequest build_webhook_request(
    std::string url, const std::string &secret, const std::string &msg_id, std::int64_t timestamp_s,
    std::string body, const std::vector<std::pair<std::string, std::string>> &extra_headers = {});

// Throws Error("invalid_webhook_secret") unless secret is a whsec_ (HMAC) or
// whsk_ (Ed25519 seed) secret that webhooks::sign accepts.
void validate_webhook_secret(std::string_view secret);

// The adapter: options "secret" (whsec_/whsk_) and "headers"; the event id
// is the webhook-id; answers are classified by adapters::classify_status;
// inbound messages are checked as Standard Webhooks (webhook-id,
// webhook-timestamp, webhook-signature) under a whsec_ or whpk_ key.
class WebhookAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "webhook"; }
  std::string_view description() const override { return "Standard Webhooks"; }
  void validate_url(std::string_view url) const override;
  std::vector<HeaderSpec> validate_options(const json::Value &options) const override;
  std::vector<PlatformRequest> build_requests(const Endpoint &endpoint,
                                              const std::vector<OutboxRow> &rows,
                                              std::int64_t now_unix_ms) const override;
  std::vector<RowVerdict> classify(const Answer &answer, std::size_t row_count,
                                   std::int64_t now_unix_ms) const override;
  InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                              std::int64_t now_unix_ms, std::int64_t tolerance_s) const override;
};

}  // namespace pgves::core
