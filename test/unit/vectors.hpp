#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/json/json.hpp"

namespace pgves::test {

// The public vectors (RFC 8785, VES v1, Standard Webhooks) are copied into the
// repository under test/vectors, with their sources in test/vectors/README.md,
// so that a clone on its own passes its tests. A relative path that climbs out
// of that directory is refused: the tests must never depend on files beside the
// clone.
inline std::string vector_path(const std::string &relative) {
  namespace fs = std::filesystem;
  const fs::path root = fs::weakly_canonical(fs::path(PGVES_VECTORS_DIR));
  const fs::path path = fs::weakly_canonical(root / relative);
  const auto [end, unused] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  (void)unused;
  if (end != root.end())
    throw std::runtime_error("test vector path " + relative + " leaves " + root.string());
  return path.string();
}

inline std::string read_vector_file(const std::string &relative) {
  const std::string path = vector_path(relative);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open test vector file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline core::json::Value load_vector_json(const std::string &relative) {
  return core::json::parse(read_vector_file(relative));
}

}  // namespace pgves::test
