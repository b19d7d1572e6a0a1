#include "core/delivery/delivery_outcome.hpp"

#include <algorithm>
#include <array>
#include <cmath>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

constexpr std::int64_t ms_per_day = 86400000;

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// delta-seconds = 1*DIGIT. Saturates at the cap while reading, so that any
// number of digits is accepted without overflow.
std::int64_t parse_delta_seconds(std::string_view s) {
  if (s.empty()) return -1;
  std::int64_t ms = 0;
  for (char c : s) {
    if (!is_digit(c)) return -1;
    if (ms < max_retry_after_ms) ms = ms * 10 + (c - '0') * 1000;
  }
  return std::min(ms, max_retry_after_ms);
}

constexpr std::array<std::string_view, 7> short_days = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Reads the fixed-layout HTTP-date grammars left to right. HTTP-date is
// case-sensitive, so names are compared exactly.
struct Cursor {
  explicit Cursor(std::string_view text) : s(text) {}

  std::string_view s;
  std::size_t pos = 0;

  bool literal(std::string_view lit) {
    if (s.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
  }

  bool number(std::size_t n_digits, int &out) {
    if (pos + n_digits > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n_digits; ++i) {
      const char c = s[pos + i];
      if (!is_digit(c)) return false;
      v = v * 10 + (c - '0');
    }
    pos += n_digits;
    out = v;
    return true;
  }

  template <std::size_t N>
  bool name(const std::array<std::string_view, N> &names, int &index) {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

  bool at_end() const { return pos == s.size(); }
};

struct DateTime {
  std::int64_t year = 0;
  int month = 0;  // 1..12
  int day = 0, hour = 0, minute = 0, second = 0;
};

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(std::int64_t year, int month) {
  constexpr int lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : lengths[month - 1];
}

// Leap years in [1, y), y >= 1.
std::int64_t leap_years_before(std::int64_t y) {
  --y;
  return y / 4 - y / 100 + y / 400;
}

// Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar
// (year >= 1, negative before 1970).
std::int64_t days_from_epoch(std::int64_t year, int month, int day) {
  constexpr int before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  std::int64_t days = 365 * (year - 1970) + leap_years_before(year) - leap_years_before(1970);
  days += before_month[month - 1] + (month > 2 && is_leap(year) ? 1 : 0);
  return days + day - 1;
}

// The calendar year containing unix_ms, needed to place RFC 850's two-digit
// years. Pinned to 1..9999, the years an HTTP-date can name, which also keeps
// the dates derived from it far from int64 overflow.
std::int64_t year_of(std::int64_t unix_ms) {
  std::int64_t days = unix_ms / ms_per_day;
  if (unix_ms % ms_per_day < 0) --days;
  if (days < days_from_epoch(1, 1, 1)) return 1;
  if (days >= days_from_epoch(10000, 1, 1)) return 9999;
  // The estimate is off by at most one year; the loops correct it.
  std::int64_t year =
      1970 + static_cast<std::int64_t>(std::floor(static_cast<double>(days) / 365.2425));
  while (days_from_epoch(year, 1, 1) > days) --year;
  while (days_from_epoch(year + 1, 1, 1) <= days) ++year;
  return year;
}

bool time_of_day(Cursor &c, DateTime &t) {
  // Second 60 is allowed for leap seconds, as RFC 9110 does.
  return c.number(2, t.hour) && t.hour <= 23 && c.literal(":") && c.number(2, t.minute) &&
         t.minute <= 59 && c.literal(":") && c.number(2, t.second) && t.second <= 60;
}

bool month_name(Cursor &c, DateTime &t) {
  int index = 0;
  if (!c.name(months, index)) return false;
  t.month = index + 1;
  return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
bool parse_imf_fixdate(std::string_view s, DateTime &t) {
  Cursor c{s};
  int weekday = 0, year = 0;
  if (!(c.name(short_days, weekday) && c.literal(", ") && c.number(2, t.day) && c.literal(" ") &&
        month_name(c, t) && c.literal(" ") && c.number(4, year) && c.literal(" ") &&
        time_of_day(c, t) && c.literal(" GMT") && c.at_end()))
    return false;
  t.year = year;
  return true;
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". RFC 9110 puts a two-digit year
// that would be more than 50 years in the future into the previous century.
bool parse_rfc850(std::string_view s, std::int64_t now_unix_ms, DateTime &t) {
  Cursor c{s};
  int weekday = 0, yy = 0;
  if (!(c.name(long_days, weekday) && c.literal(", ") && c.number(2, t.day) && c.literal("-") &&
        month_name(c, t) && c.literal("-") && c.number(2, yy) && c.literal(" ") &&
        time_of_day(c, t) && c.literal(" GMT") && c.at_end()))
    return false;
  const std::int64_t now_year = year_of(now_unix_ms);
  t.year = now_year - now_year % 100 + yy;
  if (t.year > now_year + 50) t.year -= 100;
  return true;
}

// asctime: "Sun Nov  6 08:49:37 1994", the day padded with a space.
bool parse_asctime(std::string_view s, DateTime &t) {
  Cursor c{s};
  int weekday = 0, year = 0;
  if (!(c.name(short_days, weekday) && c.literal(" ") && month_name(c, t) && c.literal(" ")))
    return false;
  if (!(c.literal(" ") ? c.number(1, t.day) : c.number(2, t.day))) return false;
  if (!(c.literal(" ") && time_of_day(c, t) && c.literal(" ") && c.number(4, year) && c.at_end()))
    return false;
  t.year = year;
  return true;
}

// Milliseconds since the epoch, or false for impossible dates such as 31 Feb.
// The weekday is not cross-checked: it carries no information the date lacks.
bool to_unix_ms(const DateTime &t, std::int64_t &out) {
  if (t.year < 1 || t.year > 9999 || t.day < 1 || t.day > days_in_month(t.year, t.month))
    return false;
  const std::int64_t days = days_from_epoch(t.year, t.month, t.day);
  out = days * ms_per_day + ((t.hour * 60 + t.minute) * 60 + t.second) * std::int64_t{1000};
  return true;
}

}  // namespace

const char *to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::synced:
      return "synced";
    case Outcome::retry:
      return "retry";
    case Outcome::permanent:
      return "permanent";
    case Outcome::gone:
      return "gone";
  }
  return "unknown";
}

Classified classify_http(long status, std::string_view retry_after_header,
                         std::int64_t now_unix_ms) {
  if (status >= 200 && status <= 299) return {Outcome::synced};
  if (status == 410) return {Outcome::gone};
  if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599)) {
    Classified c{Outcome::retry};
    if (!trim_ows(retry_after_header).empty())
      c.retry_after_ms = parse_retry_after_ms(retry_after_header, now_unix_ms);
    return c;
  }
  return {Outcome::permanent};
}

Classified classify_transport_error() { return {Outcome::retry}; }

std::int64_t parse_retry_after_ms(std::string_view value, std::int64_t now_unix_ms) {
  value = trim_ows(value);
  if (value.empty()) return -1;
  if (is_digit(value.front())) return parse_delta_seconds(value);

  DateTime t;
  if (!parse_imf_fixdate(value, t) && !parse_rfc850(value, now_unix_ms, t) &&
      !parse_asctime(value, t))
    return -1;
  std::int64_t at = 0;
  if (!to_unix_ms(t, at)) return -1;
  // at lies within the years 1..9999, so these comparisons cannot overflow, and
  // they leave at - now_unix_ms only for when it lies in (0, cap).
  if (now_unix_ms >= at) return 0;
  if (now_unix_ms <= at - max_retry_after_ms) return max_retry_after_ms;
  return at - now_unix_ms;
}

std::int64_t next_delay_ms(const RetryPolicy &policy, int failures, const Classified &classified,
                           double random01) {
  const std::int64_t backoff = backoff_ms(policy, failures, random01);
  return classified.retry_after_ms >= 0 ? std::max(backoff, classified.retry_after_ms) : backoff;
}

}  // namespace pgves::core
