// The HTTP requests the delivery worker sends and the checks every one of
// them passes; each destination kind builds its own in src/core/platforms/
// (webhook.hpp, http.hpp), so that the code doing the I/O only has to copy
// them into libcurl.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgves::core {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // in the order they are sent
  std::string body;
};

// Appends extra_headers to request after validate_header, refusing any
// reserved name (is_reserved_header) with Error("invalid_header"). The
// adapters' builders (src/core/platforms/) end with it.
void append_extra_headers(HttpRequest &request,
                          const std::vector<std::pair<std::string, std::string>> &extra_headers);

// Throws Error("invalid_header") unless name is a non-empty RFC 9110 token
// and value holds no control characters other than horizontal tab (in
// particular no CR, LF or NUL, which would let a value inject headers).
void validate_header(std::string_view name, std::string_view value);

// Throws Error("invalid_url") unless url contains no spaces or control
// characters, is accepted by libcurl's URL parser (curl_url), has the scheme
// http or https (either case) and a non-empty host.
void validate_url(std::string_view url);

// Whether a valid URL carries a user name or password ("https://u:p@host/").
// Destinations refuse these: a credential belongs in a secret header, which
// is sealed at rest, not in the url column, which is not.
bool url_has_userinfo(std::string_view url);

// Whether extra headers may not use this name (compared case-insensitively):
// the ones the builders set, which a destination must not be able to spoof,
// and the ones libcurl derives from the URL and body, which would misframe
// the request if they disagreed.
bool is_reserved_header(std::string_view name);

}  // namespace pgves::core
