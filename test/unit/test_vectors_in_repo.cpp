#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "vectors.hpp"

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path &dir, const fs::path &path) {
  const fs::path d = fs::weakly_canonical(dir), p = fs::weakly_canonical(path);
  return std::mismatch(d.begin(), d.end(), p.begin(), p.end()).first == d.end();
}

}  // namespace

// A clone must pass its own tests: the vectors come from inside it.
TEST(Vectors, LiveInsideTheRepository) {
  EXPECT_TRUE(inside(PGVES_SOURCE_DIR, PGVES_VECTORS_DIR))
      << PGVES_VECTORS_DIR << " is outside " << PGVES_SOURCE_DIR;
  EXPECT_TRUE(fs::exists(fs::path(PGVES_VECTORS_DIR) / "README.md"));
  for (const char *file : {"ves_v1.json", "standard_webhooks.json", "jcs/numbers.txt",
                           "jcs/input/weird.json", "jcs/output/weird.json"})
    EXPECT_TRUE(fs::is_regular_file(fs::path(PGVES_VECTORS_DIR) / file)) << file;
}

TEST(Vectors, RefusesPathsThatLeaveTheVectorDirectory) {
  EXPECT_THROW(pgves::test::read_vector_file("../unit/vectors.hpp"), std::runtime_error);
  EXPECT_THROW(pgves::test::read_vector_file("../README.md"), std::runtime_error);
  EXPECT_THROW(pgves::test::read_vector_file("/etc/passwd"), std::runtime_error);
  EXPECT_NO_THROW(pgves::test::read_vector_file("jcs/../ves_v1.json"));
}
