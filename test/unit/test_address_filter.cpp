#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <string>

#include "core/delivery/address_filter.hpp"
#include "core/base/error.hpp"

using pgves::core::Cidr;
using pgves::core::cidr_contains;
using pgves::core::cidr_text;
using pgves::core::Error;
using pgves::core::find_cidr;
using pgves::core::parse_cidr;
using pgves::core::parse_cidr_list;

namespace {

struct Addr {
  std::uint8_t bytes[16] = {0};
  std::size_t len = 0;
};

Addr addr(const char *text) {
  Addr a;
  if (inet_pton(AF_INET, text, a.bytes) == 1)
    a.len = 4;
  else if (inet_pton(AF_INET6, text, a.bytes) == 1)
    a.len = 16;
  return a;
}

bool in(const char *range, const char *address) {
  Addr a = addr(address);
  EXPECT_NE(a.len, 0u) << address;
  return cidr_contains(parse_cidr(range), a.bytes, a.len);
}

std::string error_code(const std::string &text) {
  try {
    parse_cidr_list(text);
  } catch (const Error &e) {
    return e.code();
  }
  return "";
}

}  // namespace

TEST(AddressFilter, ParsesAndPrintsRanges) {
  EXPECT_EQ(cidr_text(parse_cidr("169.254.0.0/16")), "169.254.0.0/16");
  EXPECT_EQ(cidr_text(parse_cidr(" fe80::/10 ")), "fe80::/10");
  EXPECT_EQ(cidr_text(parse_cidr("10.1.2.3")), "10.1.2.3/32");
  EXPECT_EQ(cidr_text(parse_cidr("::1")), "::1/128");
  EXPECT_EQ(cidr_text(parse_cidr("0.0.0.0/0")), "0.0.0.0/0");
  EXPECT_EQ(parse_cidr_list("169.254.0.0/16, fe80::/10").size(), 2u);
  EXPECT_TRUE(parse_cidr_list("").empty());
  EXPECT_TRUE(parse_cidr_list("  ").empty());
}

TEST(AddressFilter, RefusesWhatIsNotARange) {
  for (const char *bad :
       {"10.0.0.0/33", "::/129", "10.0.0.1/8", "fe80::1/10", "10.0.0/8", "256.0.0.0/8", "10.0.0.0/",
        "10.0.0.0/x", "10.0.0.0/8/8", "localhost", "10.0.0.0/8,", "10.0.0.0/8,,::1", "fe80::/-1",
        "1.2.3.4 /32", "10.0.0.0/0008"})
    EXPECT_EQ(error_code(bad), "invalid_cidr") << bad;
}

TEST(AddressFilter, MatchesIpv4) {
  EXPECT_TRUE(in("127.0.0.0/8", "127.0.0.1"));
  EXPECT_TRUE(in("127.0.0.0/8", "127.255.255.255"));
  EXPECT_FALSE(in("127.0.0.0/8", "128.0.0.1"));
  EXPECT_TRUE(in("169.254.0.0/16", "169.254.169.254"));
  EXPECT_FALSE(in("169.254.0.0/16", "169.255.0.1"));
  EXPECT_TRUE(in("10.0.0.0/9", "10.127.0.1"));
  EXPECT_FALSE(in("10.0.0.0/9", "10.128.0.1"));
  EXPECT_TRUE(in("0.0.0.0/0", "8.8.8.8"));
  EXPECT_TRUE(in("192.0.2.7", "192.0.2.7"));
  EXPECT_FALSE(in("192.0.2.7", "192.0.2.8"));
}

TEST(AddressFilter, MatchesIpv6AndMappedIpv4) {
  EXPECT_TRUE(in("fe80::/10", "fe80::1"));
  EXPECT_TRUE(in("fe80::/10", "febf:ffff::1"));
  EXPECT_FALSE(in("fe80::/10", "fec0::1"));
  EXPECT_TRUE(in("::1/128", "::1"));
  EXPECT_FALSE(in("::1/128", "::2"));
  // An IPv4-mapped IPv6 address is the IPv4 address it carries.
  EXPECT_TRUE(in("127.0.0.0/8", "::ffff:127.0.0.1"));
  EXPECT_TRUE(in("169.254.0.0/16", "::ffff:169.254.169.254"));
  EXPECT_FALSE(in("::/0", "127.0.0.1"));
  EXPECT_FALSE(in("0.0.0.0/0", "::1"));
}

TEST(AddressFilter, FindsTheFirstMatchingRange) {
  auto ranges = parse_cidr_list("169.254.0.0/16, fe80::/10, 127.0.0.0/8");
  Addr a = addr("127.0.0.1");
  const Cidr *hit = find_cidr(ranges, a.bytes, a.len);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(cidr_text(*hit), "127.0.0.0/8");
  Addr b = addr("93.184.216.34");
  EXPECT_EQ(find_cidr(ranges, b.bytes, b.len), nullptr);
  EXPECT_EQ(find_cidr({}, a.bytes, a.len), nullptr);
}

TEST(AddressFilter, FindsTheRangeOfANumericAddressText) {
  const std::vector<Cidr> ranges = parse_cidr_list("169.254.0.0/16, fe80::/10");
  const Cidr *hit = pgves::core::find_cidr_numeric(ranges, "169.254.169.254");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(cidr_text(*hit), "169.254.0.0/16");
  ASSERT_NE(pgves::core::find_cidr_numeric(ranges, "fe80::1"), nullptr);
  ASSERT_NE(pgves::core::find_cidr_numeric(ranges, "::ffff:169.254.1.1"), nullptr);
  EXPECT_EQ(pgves::core::find_cidr_numeric(ranges, "10.0.0.1"), nullptr);
  EXPECT_EQ(pgves::core::find_cidr_numeric(ranges, "db.example.com"), nullptr);
  EXPECT_EQ(pgves::core::find_cidr_numeric(ranges, ""), nullptr);
}
