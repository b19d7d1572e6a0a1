#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/json.hpp"

namespace pgves::test {

// The vectors are shared with other implementations, so they are read from
// where they are published rather than copied into the tests.
inline std::string read_vector_file(const std::string& relative) {
    const std::string path = std::string(PGVES_VECTORS_DIR) + "/" + relative;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open test vector file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

inline core::json::Value load_vector_json(const std::string& relative) {
    return core::json::parse(read_vector_file(relative));
}

}  // namespace pgves::test
