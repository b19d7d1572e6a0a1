#include "core/platforms/http.hpp"

#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

HttpRequest build_http_request(
    std::string url, const std::string &idempotency_key, std::string body,
    const std::vector<std::pair<std::string, std::string>> &extra_headers) {
  validate_url(url);
  if (idempotency_key.empty()) throw Error("invalid_header", "Idempotency-Key must not be empty");
  validate_header("Idempotency-Key", idempotency_key);

  HttpRequest request;
  request.headers.emplace_back("content-type", "application/json");
  request.headers.emplace_back("Idempotency-Key", idempotency_key);
  append_extra_headers(request, extra_headers);
  request.url = std::move(url);
  request.body = std::move(body);
  return request;
}

void HttpAdapter::validate_url(std::string_view url) const { adapters::validate_http_url(url); }

std::vector<HeaderSpec> HttpAdapter::validate_options(const json::Value &options) const {
  if (const std::string *secret = adapters::secret_option(options))
    for (char c : *secret)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        throw OptionError("invalid_option", "the destination secret contains a control character",
                          "Pass the secret as it was given to you, without line breaks.");
  return adapters::validate_header_option(options);
}

std::vector<PlatformRequest> HttpAdapter::build_requests(const Endpoint &endpoint,
                                                         const std::vector<OutboxRow> &rows,
                                                         std::int64_t) const {
  return adapters::one_request_per_row(rows, [&](const OutboxRow &row) {
    return build_http_request(endpoint.url, std::string(row.event_id), std::string(row.body),
                              endpoint.headers);
  });
}

std::vector<RowVerdict> HttpAdapter::classify(const Answer &answer, std::size_t row_count,
                                              std::int64_t now_unix_ms) const {
  return adapters::classify_status(answer, row_count, now_unix_ms);
}

InboundCheck HttpAdapter::verify_inbound(std::string_view, const InboundMessage &, std::int64_t,
                                         std::int64_t) const {
  throw Error("unsupported",
              "destinations of kind http define no signature for received messages; use kind "
              "webhook (Standard Webhooks) to verify what a platform sends");
}

}  // namespace pgves::core
