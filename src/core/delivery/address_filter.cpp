#include "core/delivery/address_filter.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void refuse(std::string_view text, const char *why) {
  throw Error("invalid_cidr", "\"" + std::string(text) + "\" is not a CIDR range: " + why);
}

bool is_v4_mapped(const std::uint8_t *a) {
  static const std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, prefix, sizeof prefix) == 0;
}

bool prefix_equal(const std::uint8_t *a, const std::uint8_t *b, int bits) {
  int bytes = bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(bytes)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

Cidr parse_cidr(std::string_view text) {
  std::string_view entry = trim(text);
  if (entry.empty()) refuse(text, "it is empty");
  std::string_view address = entry, bits;
  if (std::size_t slash = entry.find('/'); slash != std::string_view::npos) {
    address = entry.substr(0, slash);
    bits = entry.substr(slash + 1);
    if (bits.empty()) refuse(text, "the prefix length after / is missing");
  }
  Cidr c;
  std::string a(address);
  if (a.find(':') != std::string::npos) {
    c.v6 = true;
    if (inet_pton(AF_INET6, a.c_str(), c.addr.data()) != 1) refuse(text, "not an IPv6 address");
  } else if (inet_pton(AF_INET, a.c_str(), c.addr.data()) != 1) {
    refuse(text, "not an IPv4 address (four decimal numbers, e.g. 169.254.0.0/16)");
  }
  int max_bits = c.v6 ? 128 : 32;
  c.prefix = max_bits;
  if (!bits.empty()) {
    if (bits.size() > 3) refuse(text, "the prefix length is too long");
    int n = 0;
    for (char ch : bits) {
      if (ch < '0' || ch > '9') refuse(text, "the prefix length must be a number");
      n = n * 10 + (ch - '0');
    }
    if (n > max_bits)
      refuse(text,
             c.v6 ? "an IPv6 prefix length is at most 128" : "an IPv4 prefix length is at most 32");
    c.prefix = n;
  }
  // Host bits must be zero: a typo such as 10.0.0.1/8 is more likely a
  // mistake than a wish for 10.0.0.0/8.
  Cidr masked = c;
  for (int i = c.prefix; i < max_bits; ++i)
    masked.addr[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  if (masked.addr != c.addr) refuse(text, "bits are set below the prefix length");
  return c;
}

std::vector<Cidr> parse_cidr_list(std::string_view text) {
  std::vector<Cidr> out;
  if (trim(text).empty()) return out;
  std::size_t start = 0;
  while (true) {
    std::size_t comma = text.find(',', start);
    std::string_view entry = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    out.push_back(parse_cidr(entry));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

bool cidr_contains(const Cidr &range, const std::uint8_t *addr, std::size_t len) {
  if (len == 16 && is_v4_mapped(addr)) {
    addr += 12;
    len = 4;
  }
  if (len == 4) return !range.v6 && prefix_equal(range.addr.data(), addr, range.prefix);
  if (len == 16) return range.v6 && prefix_equal(range.addr.data(), addr, range.prefix);
  return false;
}

const Cidr *find_cidr(const std::vector<Cidr> &ranges, const std::uint8_t *addr, std::size_t len) {
  for (const Cidr &c : ranges)
    if (cidr_contains(c, addr, len)) return &c;
  return nullptr;
}

const Cidr *find_cidr_numeric(const std::vector<Cidr> &ranges, const std::string &address) {
  std::uint8_t bytes[16];
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) return find_cidr(ranges, bytes, 4);
  if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) return find_cidr(ranges, bytes, 16);
  return nullptr;
}

std::string address_text(const std::uint8_t *addr, std::size_t len) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (len == 4)
    inet_ntop(AF_INET, addr, buf, sizeof buf);
  else if (len == 16)
    inet_ntop(AF_INET6, addr, buf, sizeof buf);
  else
    return "?";
  return buf;
}

std::string cidr_text(const Cidr &range) {
  return address_text(range.addr.data(), range.v6 ? 16 : 4) + "/" + std::to_string(range.prefix);
}

}  // namespace pgves::core
