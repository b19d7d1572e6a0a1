#include "core/delivery/http_request.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <memory>
#include <new>

#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

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
    "content-type",    "webhook-id",     "webhook-timestamp", "webhook-signature",
    "idempotency-key", "content-length", "transfer-encoding", "host",
    "connection"};

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
  for (char c : url)
    if (is_ctl(static_cast<unsigned char>(c)) || c == ' ')
      throw Error("invalid_url", "destination url contains a space or control character");
  if (!istarts_with(url, "https://") && !istarts_with(url, "http://"))
    throw Error("invalid_url", "destination url must start with http:// or https://");
  // libcurl reads "http:///x" as host "x"; a third slash is a missing host.
  if (url.substr(url.find("://") + 3, 1) == "/")
    throw Error("invalid_url", "destination url has no host");
  // libcurl's own parser: what it accepts here is what the transfer will use.
  std::unique_ptr<CURLU, void (*)(CURLU *)> handle(curl_url(), curl_url_cleanup);
  if (!handle) throw std::bad_alloc();
  const std::string text(url);
  if (CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0); rc != CURLUE_OK)
    throw Error("invalid_url",
                std::string("destination url is not a valid URL: ") + curl_url_strerror(rc));
  auto part = [&](CURLUPart which) {
    char *value = nullptr;
    std::string out;
    if (curl_url_get(handle.get(), which, &value, 0) == CURLUE_OK && value) out = value;
    curl_free(value);
    return out;
  };
  const std::string scheme = part(CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https")
    throw Error("invalid_url", "destination url must start with http:// or https://");
  if (part(CURLUPART_HOST).empty()) throw Error("invalid_url", "destination url has no host");
}

bool url_has_userinfo(std::string_view url) {
  std::unique_ptr<CURLU, void (*)(CURLU *)> handle(curl_url(), curl_url_cleanup);
  if (!handle) throw std::bad_alloc();
  const std::string text(url);
  if (curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) return false;
  for (CURLUPart which : {CURLUPART_USER, CURLUPART_PASSWORD}) {
    char *value = nullptr;
    const bool present = curl_url_get(handle.get(), which, &value, 0) == CURLUE_OK && value;
    curl_free(value);
    if (present) return true;
  }
  return false;
}

bool is_reserved_header(std::string_view name) {
  for (std::string_view reserved : reserved_headers)
    if (iequals(name, reserved)) return true;
  return false;
}

void append_extra_headers(HttpRequest &request,
                          const std::vector<std::pair<std::string, std::string>> &extra_headers) {
  for (const auto &[name, value] : extra_headers) {
    validate_header(name, value);
    if (is_reserved_header(name))
      throw Error("invalid_header",
                  "header " + name + " is set by pg_ves and cannot be overridden");
    request.headers.emplace_back(name, value);
  }
}

}  // namespace pgves::core
