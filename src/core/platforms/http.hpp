// Destinations of kind "http": a plain JSON POST per outbox row, with the
// event id as Idempotency-Key.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/delivery/http_request.hpp"
#include "core/platforms/adapter.hpp"

namespace pgves::core {

// A plain JSON POST: content-type: application/json and Idempotency-Key (not
// empty), followed by extra_headers, so that receivers can drop the repeats
// that at-least-once delivery produces.
HttpRequest build_http_request(
    std::string url, const std::string &idempotency_key, std::string body,
    const std::vector<std::pair<std::string, std::string>> &extra_headers = {});

// The adapter: options "secret" (any string without control characters;
// kept sealed, requests of this kind do not carry it) and "headers"; answers are classified by
// adapters::classify_status; it receives nothing, so verify_inbound throws Error("unsupported").
class HttpAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "http"; }
  std::string_view description() const override { return "plain JSON POST"; }
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
