// Any input must either be refused with pgves::core::Error or yield an event
// whose exported envelope reads back to the same envelope and the same hashes,
// so an event exported by pg_ves verifies identically wherever it is ingested.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json/canonical_json.hpp"
#include "core/ves/envelope.hpp"
#include "core/base/error.hpp"
#include "core/ves/ves.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  namespace ves = pgves::core::ves;
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  ves::Event event;
  try {
    event = ves::parse_envelope(text);
  } catch (const pgves::core::Error &) {
    return 0;
  }
  try {
    ves::check_payload_hashes(event);
  } catch (const pgves::core::Error &e) {
    // Arbitrary input rarely hashes right, but a parsed event can fail no other way.
    if (e.code() != "hash_mismatch") __builtin_trap();
  }
  const std::string exported = ves::export_envelope(event);
  const ves::Event again = ves::parse_envelope(exported);
  if (ves::export_envelope(again) != exported) __builtin_trap();
  if (pgves::core::jcs::canonicalize_text(exported) != exported) __builtin_trap();
  const auto signing = ves::signing_hash(event);
  if (ves::signing_hash(again) != signing) __builtin_trap();
  const std::uint64_t seq = event.sequence_number.value_or(0);
  if (ves::leaf_hash(event.tenant_id, event.store_id, seq, signing, event.agent_signature) !=
      ves::leaf_hash(again.tenant_id, again.store_id, seq, signing, again.agent_signature))
    __builtin_trap();
  return 0;
}
