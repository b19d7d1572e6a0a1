// Address ranges a destination may not connect to (ves.destination_address_reject).
//
// The worker checks every address libcurl is about to connect to, after name
// resolution, so a host name that resolves into a refused range is refused as
// well. Parsing and matching live here so the GUC check hook, the worker and
// the unit tests share one definition.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgves::core {

struct Cidr {
  bool v6 = false;  // false: the first 4 bytes of addr hold an IPv4 address
  std::array<std::uint8_t, 16> addr{};
  int prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6
};

// Parses "a.b.c.d/n" or "x:y::z/n"; a bare address means a single host (/32
// or /128). Host bits below the prefix must be zero, so "10.0.0.1/8" is
// refused rather than silently read as 10.0.0.0/8.
// Throws Error("invalid_cidr") with a message naming the entry.
Cidr parse_cidr(std::string_view text);

// A comma-separated list of CIDRs; spaces around entries are ignored and an
// empty or blank list means "nothing refused".
std::vector<Cidr> parse_cidr_list(std::string_view text);

// Whether the address (4 bytes for IPv4, 16 for IPv6) lies in the range. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as the IPv4 address it
// carries, so the mapping cannot be used to slip past an IPv4 range.
bool cidr_contains(const Cidr &range, const std::uint8_t *addr, std::size_t len);

// The first range of the list that holds the address, or nullptr.
const Cidr *find_cidr(const std::vector<Cidr> &ranges, const std::uint8_t *addr, std::size_t len);

// The same for an address given as numeric text ("10.0.0.1", "fe80::1");
// nullptr for text that is not an address.
const Cidr *find_cidr_numeric(const std::vector<Cidr> &ranges, const std::string &address);

// The canonical text of a range ("169.254.0.0/16", "fe80::/10") and of an
// address, for error messages.
std::string cidr_text(const Cidr &range);
std::string address_text(const std::uint8_t *addr, std::size_t len);

}  // namespace pgves::core
