#include "no_postgres.hpp"

#include "http_request.hpp"

#include <algorithm>
#include <array>

#include "error.hpp"
#include "standard_webhooks.hpp"

namespace pgves::core {

namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// tchar from RFC 9110 section 5.6.2.
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

constexpr std::array<std::string_view, 9> reserved_headers = {
    "content-type", "webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key",
    "content-length", "transfer-encoding", "host", "connection"};

void append_extra(HttpRequest& request, const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    for (const auto& [name, value] : extra_headers) {
        validate_header(name, value);
        if (is_reserved_header(name))
            throw Error("invalid_header", "header " + name + " is set by pg_ves and cannot be overridden");
        request.headers.emplace_back(name, value);
    }
}

}  // namespace

void validate_header(std::string_view name, std::string_view value) {
    if (name.empty()) throw Error("invalid_header", "header name is empty");
    for (char c : name)
        if (!is_tchar(c))
            throw Error("invalid_header", "header names may only contain RFC 9110 token characters");
    for (char c : value)
        if (is_ctl(static_cast<unsigned char>(c)) && c != '\t')
            throw Error("invalid_header",
                        "value of header " + std::string(name) + " contains a control character");
}

void validate_url(std::string_view url) {
    std::string_view rest;
    if (istarts_with(url, "https://"))
        rest = url.substr(8);
    else if (istarts_with(url, "http://"))
        rest = url.substr(7);
    else
        throw Error("invalid_url", "destination url must start with http:// or https://");
    for (char c : url)
        if (is_ctl(static_cast<unsigned char>(c)) || c == ' ')
            throw Error("invalid_url", "destination url contains a space or control character");
    // The host follows any userinfo and precedes any port, path, query or fragment.
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
    std::size_t host_size = authority.find(':');
    if (!authority.empty() && authority.front() == '[') {
        // An IPv6 literal, whose colons do not start a port.
        const std::size_t close = authority.find(']');
        host_size = close == std::string_view::npos ? 0 : close - 1;
    }
    if (std::min(host_size, authority.size()) == 0) throw Error("invalid_url", "destination url has no host");
}

bool is_reserved_header(std::string_view name) {
    for (std::string_view reserved : reserved_headers)
        if (iequals(name, reserved)) return true;
    return false;
}

HttpRequest build_webhook_request(std::string url, const std::string& secret, const std::string& msg_id,
                                  std::int64_t timestamp_s, std::string body,
                                  const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    validate_url(url);
    if (msg_id.empty()) throw Error("invalid_header", "webhook-id must not be empty");
    validate_header("webhook-id", msg_id);
    const std::string timestamp = std::to_string(timestamp_s);

    HttpRequest request;
    request.headers.emplace_back("content-type", "application/json");
    request.headers.emplace_back("webhook-id", msg_id);
    request.headers.emplace_back("webhook-timestamp", timestamp);
    if (!secret.empty())
        request.headers.emplace_back("webhook-signature", webhooks::sign(secret, msg_id, timestamp, body));
    append_extra(request, extra_headers);
    request.url = std::move(url);
    request.body = std::move(body);
    return request;
}

HttpRequest build_http_request(std::string url, const std::string& idempotency_key, std::string body,
                               const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    validate_url(url);
    if (idempotency_key.empty()) throw Error("invalid_header", "Idempotency-Key must not be empty");
    validate_header("Idempotency-Key", idempotency_key);

    HttpRequest request;
    request.headers.emplace_back("content-type", "application/json");
    request.headers.emplace_back("Idempotency-Key", idempotency_key);
    append_extra(request, extra_headers);
    request.url = std::move(url);
    request.body = std::move(body);
    return request;
}

}  // namespace pgves::core
