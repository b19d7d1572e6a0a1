// Any input must either be refused with pgves::core::Error or canonicalize to
// a fixed point: canonical text parses back to a value with the same canonical
// form, which is what lets a peer re-derive payload hashes from exported JSON.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json/canonical_json.hpp"
#include "core/base/error.hpp"
#include "core/json/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  namespace json = pgves::core::json;
  namespace jcs = pgves::core::jcs;
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string canonical;
  try {
    canonical = jcs::canonicalize(json::parse(text));
  } catch (const pgves::core::Error &) {
    return 0;
  }
  if (jcs::canonicalize(json::parse(canonical)) != canonical) __builtin_trap();
  if (jcs::canonicalize_text(canonical) != canonical) __builtin_trap();
  return 0;
}
