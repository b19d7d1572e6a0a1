#include "core/ves/timestamp.hpp"

#include <gtest/gtest.h>

using pgves::core::rfc3339_utc_millis;

TEST(Timestamp, FormatsUtcWithMilliseconds) {
  // 2026-11-01T12:00:00.100Z, the created_at of the first VES v1 vector.
  EXPECT_EQ(rfc3339_utc_millis(1793534400100000LL), "2026-11-01T12:00:00.100Z");
  EXPECT_EQ(rfc3339_utc_millis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339_utc_millis(999), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339_utc_millis(-1000), "1969-12-31T23:59:59.999Z");
}
