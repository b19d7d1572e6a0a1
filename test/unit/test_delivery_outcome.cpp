#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "core/delivery/delivery_outcome.hpp"

using pgves::core::Classified;
using pgves::core::classify_http;
using pgves::core::classify_transport_error;
using pgves::core::max_retry_after_ms;
using pgves::core::next_delay_ms;
using pgves::core::Outcome;
using pgves::core::parse_retry_after_ms;
using pgves::core::RetryPolicy;

namespace {

// Wed, 21 Oct 2015 07:28:00 GMT
constexpr std::int64_t oct21_2015_ms = 1445412480000;

Outcome expected_outcome(long status) {
  if (status >= 200 && status <= 299) return Outcome::synced;
  if (status == 410) return Outcome::gone;
  if (status == 408 || status == 425 || status == 429 || status >= 500) return Outcome::retry;
  return Outcome::permanent;
}

}  // namespace

TEST(DeliveryOutcome, ClassificationTable) {
  for (long status = 100; status <= 599; ++status) {
    const Classified c = classify_http(status, "", oct21_2015_ms);
    EXPECT_EQ(c.outcome, expected_outcome(status)) << "status " << status;
    EXPECT_EQ(c.retry_after_ms, -1) << "status " << status;
  }
}

TEST(DeliveryOutcome, NamedStatuses) {
  const auto outcome = [](long status) { return classify_http(status, "", 0).outcome; };
  EXPECT_EQ(outcome(200), Outcome::synced);
  EXPECT_EQ(outcome(201), Outcome::synced);
  EXPECT_EQ(outcome(204), Outcome::synced);
  EXPECT_EQ(outcome(299), Outcome::synced);
  EXPECT_EQ(outcome(410), Outcome::gone);
  EXPECT_EQ(outcome(408), Outcome::retry);
  EXPECT_EQ(outcome(425), Outcome::retry);
  EXPECT_EQ(outcome(429), Outcome::retry);
  EXPECT_EQ(outcome(500), Outcome::retry);
  EXPECT_EQ(outcome(502), Outcome::retry);
  EXPECT_EQ(outcome(503), Outcome::retry);
  EXPECT_EQ(outcome(599), Outcome::retry);
  EXPECT_EQ(outcome(100), Outcome::permanent);
  EXPECT_EQ(outcome(301), Outcome::permanent);
  EXPECT_EQ(outcome(304), Outcome::permanent);
  EXPECT_EQ(outcome(400), Outcome::permanent);
  EXPECT_EQ(outcome(401), Outcome::permanent);
  EXPECT_EQ(outcome(404), Outcome::permanent);
  EXPECT_EQ(outcome(409), Outcome::permanent);
  EXPECT_EQ(outcome(413), Outcome::permanent);
  EXPECT_EQ(outcome(422), Outcome::permanent);
  // Codes outside the defined range.
  EXPECT_EQ(outcome(0), Outcome::permanent);
  EXPECT_EQ(outcome(-1), Outcome::permanent);
  EXPECT_EQ(outcome(99), Outcome::permanent);
  EXPECT_EQ(outcome(600), Outcome::permanent);
  EXPECT_EQ(outcome(999), Outcome::permanent);
}

TEST(DeliveryOutcome, RetryAfterOnlyForRetries) {
  EXPECT_EQ(classify_http(503, "120", 0).retry_after_ms, 120000);
  EXPECT_EQ(classify_http(429, " 7 ", 0).retry_after_ms, 7000);
  EXPECT_EQ(classify_http(408, "0", 0).retry_after_ms, 0);
  EXPECT_EQ(classify_http(503, "soon", 0).retry_after_ms, -1);
  EXPECT_EQ(
      classify_http(503, "Wed, 21 Oct 2015 07:28:00 GMT", oct21_2015_ms - 90000).retry_after_ms,
      90000);
  EXPECT_EQ(classify_http(200, "120", 0).retry_after_ms, -1);
  EXPECT_EQ(classify_http(301, "120", 0).retry_after_ms, -1);
  EXPECT_EQ(classify_http(400, "120", 0).retry_after_ms, -1);
  EXPECT_EQ(classify_http(410, "120", 0).retry_after_ms, -1);
  EXPECT_EQ(classify_http(410, "120", 0).outcome, Outcome::gone);
}

TEST(DeliveryOutcome, TransportErrorsAreRetried) {
  const Classified c = classify_transport_error();
  EXPECT_EQ(c.outcome, Outcome::retry);
  EXPECT_EQ(c.retry_after_ms, -1);
}

TEST(DeliveryOutcome, OutcomeNames) {
  EXPECT_STREQ(to_string(Outcome::synced), "synced");
  EXPECT_STREQ(to_string(Outcome::retry), "retry");
  EXPECT_STREQ(to_string(Outcome::permanent), "permanent");
  EXPECT_STREQ(to_string(Outcome::gone), "gone");
}

TEST(RetryAfter, DeltaSeconds) {
  EXPECT_EQ(parse_retry_after_ms("120", 0), 120000);
  EXPECT_EQ(parse_retry_after_ms("0", 0), 0);
  EXPECT_EQ(parse_retry_after_ms("000", 0), 0);
  EXPECT_EQ(parse_retry_after_ms("1", 123456), 1000);
  EXPECT_EQ(parse_retry_after_ms("\t 5 \t", 0), 5000);
  EXPECT_EQ(parse_retry_after_ms("86400", 0), 86400000);
  EXPECT_EQ(parse_retry_after_ms("86401", 0), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms("99999999999999999999999999999999", 0), max_retry_after_ms);
  EXPECT_EQ(max_retry_after_ms, 86400000);
}

TEST(RetryAfter, InvalidValues) {
  for (const char *v :
       {"", "   ", "-1", "+1", "abc", "1.5", "1e3", "12 34", "120s", "0x10", "\xd9\xa1"})
    EXPECT_EQ(parse_retry_after_ms(v, oct21_2015_ms), -1) << '"' << v << '"';
}

TEST(RetryAfter, ImfFixdate) {
  const std::string date = "Wed, 21 Oct 2015 07:28:00 GMT";
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms - 90000), 90000);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms - 89500), 89500);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms), 0);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms + 1), 0);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms + 3600000), 0);
  EXPECT_EQ(parse_retry_after_ms(date, 0), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms - max_retry_after_ms), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms(date, oct21_2015_ms - max_retry_after_ms + 1),
            max_retry_after_ms - 1);
  EXPECT_EQ(parse_retry_after_ms("  " + date + " ", oct21_2015_ms - 1000), 1000);
  // 2024-02-29 is a leap day; the weekday name is not cross-checked.
  EXPECT_EQ(parse_retry_after_ms("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800000 - 60000), 60000);
  EXPECT_EQ(parse_retry_after_ms("Mon, 29 Feb 2024 00:00:10 GMT", 1709164800000), 10000);
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", oct21_2015_ms), 0);
  EXPECT_EQ(parse_retry_after_ms("Sun, 01 Nov 2026 12:00:00 GMT", 1793534400000 - 5), 5);
}

TEST(RetryAfter, ObsoleteDateForms) {
  // RFC 850 with a two-digit year, resolved against now.
  EXPECT_EQ(parse_retry_after_ms("Wednesday, 21-Oct-15 07:28:00 GMT", oct21_2015_ms - 90000),
            90000);
  EXPECT_EQ(parse_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", oct21_2015_ms), 0);
  // From 2015, "64" is at most 50 years ahead (2064); "66" would be more, so it is 1966.
  EXPECT_EQ(parse_retry_after_ms("Friday, 01-Jan-64 00:00:00 GMT", oct21_2015_ms),
            max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms("Saturday, 01-Jan-66 00:00:00 GMT", oct21_2015_ms), 0);
  // asctime, with the day padded by a space or written with two digits.
  EXPECT_EQ(parse_retry_after_ms("Wed Oct 21 07:28:00 2015", oct21_2015_ms - 90000), 90000);
  EXPECT_EQ(parse_retry_after_ms("Sun Nov  6 08:49:37 1994", 784111777000 - 2000), 2000);
  EXPECT_EQ(parse_retry_after_ms("Sun Nov 06 08:49:37 1994", 784111777000 - 2000), 2000);
}

TEST(RetryAfter, MalformedDates) {
  for (const char *v : {
           "Wed, 21 Oct 2015 07:28:00",         // no zone
           "Wed, 21 Oct 2015 07:28:00 UTC",     // only GMT is allowed
           "Wed, 21 Oct 2015 07:28:00 gmt",     // HTTP-date is case-sensitive
           "wed, 21 Oct 2015 07:28:00 GMT",     //
           "Wed, 21 oct 2015 07:28:00 GMT",     //
           "Wed, 21 Oct 2015 07:28 GMT",        // no seconds
           "Wed, 1 Oct 2015 07:28:00 GMT",      // one-digit day
           "Wed,21 Oct 2015 07:28:00 GMT",      // missing space
           "Wed, 21 Oct 15 07:28:00 GMT",       // two-digit year in IMF-fixdate
           "Wed, 21 Oct 2015 24:00:00 GMT",     // hour out of range
           "Wed, 21 Oct 2015 07:60:00 GMT",     //
           "Wed, 21 Oct 2015 07:28:61 GMT",     //
           "Wed, 31 Sep 2015 07:28:00 GMT",     // no 31 September
           "Sun, 29 Feb 2015 07:28:00 GMT",     // not a leap year
           "Thu, 29 Feb 1900 00:00:00 GMT",     // century, not a leap year
           "Wed, 00 Oct 2015 07:28:00 GMT",     //
           "Sat, 01 Jan 0000 00:00:00 GMT",     // no year 0
           "Xyz, 21 Oct 2015 07:28:00 GMT",     //
           "Wed, 21 Oct 2015 07:28:00 GMT x",   // trailing text
           "Wed, 21 Oct 2015 07:28:00 GMTGMT",  //
           "Wed, 21-Oct-15 07:28:00 GMT",       // RFC 850 needs the long weekday
           "Wednesday, 21 Oct 2015 07:28:00 GMT",
           "Wed Oct 21 07:28:00 15",        // asctime needs four digits
           "Wed Oct 21 07:28:00 2015 GMT",  //
       })
    EXPECT_EQ(parse_retry_after_ms(v, oct21_2015_ms - 90000), -1) << '"' << v << '"';
  // A leap second and 29 February 2000 (a leap century) are fine.
  EXPECT_EQ(parse_retry_after_ms("Wed, 21 Oct 2015 07:27:60 GMT", oct21_2015_ms - 1000), 1000);
  EXPECT_EQ(parse_retry_after_ms("Tue, 29 Feb 2000 00:00:00 GMT", oct21_2015_ms), 0);
}

TEST(RetryAfter, ExtremeClocks) {
  const std::int64_t min = std::numeric_limits<std::int64_t>::min();
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const std::string date = "Wed, 21 Oct 2015 07:28:00 GMT";
  EXPECT_EQ(parse_retry_after_ms(date, min), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms(date, max), 0);
  EXPECT_EQ(parse_retry_after_ms("Mon, 01 Jan 0001 00:00:00 GMT", max), 0);
  EXPECT_EQ(parse_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", min), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms("Wednesday, 21-Oct-15 07:28:00 GMT", min), max_retry_after_ms);
  EXPECT_EQ(parse_retry_after_ms("Wednesday, 21-Oct-15 07:28:00 GMT", max), 0);
  EXPECT_EQ(parse_retry_after_ms("120", min), 120000);
}

TEST(NextDelay, LongerOfBackoffAndRetryAfter) {
  const RetryPolicy p;
  const Classified none{Outcome::retry, -1};
  EXPECT_EQ(next_delay_ms(p, 1, none, 0.0), 400);
  EXPECT_EQ(next_delay_ms(p, 11, none, 0.999), 299940);

  const Classified later{Outcome::retry, 120000};
  EXPECT_EQ(next_delay_ms(p, 1, later, 0.0), 120000);
  EXPECT_EQ(next_delay_ms(p, 11, later, 0.0), 240000);

  const Classified now{Outcome::retry, 0};
  EXPECT_EQ(next_delay_ms(p, 3, now, 0.0), 1600);

  // Retry-After may exceed the policy's cap; the receiver asked for it.
  const Classified day{Outcome::retry, max_retry_after_ms};
  EXPECT_EQ(next_delay_ms(p, 30, day, 0.999), max_retry_after_ms);

  EXPECT_EQ(next_delay_ms(p, 2, classify_http(503, "3", 0), 0.0), 3000);
  EXPECT_EQ(next_delay_ms(p, 2, classify_http(503, "bogus", 0), 0.0), 800);
  EXPECT_EQ(next_delay_ms(p, 2, classify_transport_error(), 0.0), 800);
}
