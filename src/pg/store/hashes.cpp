// SQL access to the VES v1 primitives of src/core: canonical JSON, hashes,
// Merkle roots and proofs, so anyone can recompute them from data alone.
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/ves/ves.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/stored_event.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
}

#include <cstring>
#include <string>
#include <vector>

using namespace pgves::pg;
namespace ves = pgves::core::ves;

namespace {

void require_args(FunctionCallInfo fcinfo, int n) {
  for (int i = 0; i < n; ++i)
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument, "arguments must not be NULL", {},
                     "Pass every argument.");
}

Datum bytes_datum(const uint8 *data, size_t len) { return safe::bytea_datum(data, len); }

template <size_t N>
std::array<uint8, N> fixed_bytes(Datum d, const char *name) {
  std::vector<uint8> raw = safe::bytea_bytes(d);
  if (raw.size() != N)
    throw VesError(sqlstate::invalid_argument,
                   std::string(name) + " must be " + std::to_string(N) + " bytes, not " +
                       std::to_string(raw.size()),
                   {}, "Pass the raw bytes, e.g. decode('<hex>', 'hex').");
  std::array<uint8, N> out;
  std::memcpy(out.data(), raw.data(), N);
  return out;
}

ves::Uuid uuid_arg(FunctionCallInfo fcinfo, int n) { return to_core_uuid(*PG_GETARG_UUID_P(n)); }

uint64 sequence_arg(FunctionCallInfo fcinfo, int n) {
  int64 v = PG_GETARG_INT64(n);
  if (v < 0)
    throw VesError(sqlstate::invalid_argument, "sequence numbers are 0 or more", {},
                   "Pass a sequence number >= 0.");
  return static_cast<uint64>(v);
}

std::vector<ves::Hash32> hash_array(Datum d, const char *name) {
  // Declared outside pg_call: a Postgres error must not skip its destructor.
  std::vector<std::vector<uint8>> raw;
  pg_call_void([&] {
    ArrayType *arr = DatumGetArrayTypeP(d);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    for (int i = 0; i < n; ++i) {
      if (nulls[i])
        ereport(ERROR,
                (errcode(sqlstate::null_argument), errmsg("%s must not contain NULLs", name)));
      bytea *b = DatumGetByteaPP(elems[i]);
      const uint8 *p = reinterpret_cast<const uint8 *>(VARDATA_ANY(b));
      raw.emplace_back(p, p + VARSIZE_ANY_EXHDR(b));
    }
  });
  std::vector<ves::Hash32> out;
  for (const auto &r : raw) {
    if (r.size() != 32)
      throw VesError(sqlstate::invalid_argument,
                     std::string("every element of ") + name + " must be 32 bytes", {},
                     "Pass SHA-256 hashes.");
    ves::Hash32 h;
    std::memcpy(h.data(), r.data(), 32);
    out.push_back(h);
  }
  return out;
}

Datum hash_array_datum(const std::vector<ves::Hash32> &hashes) {
  return pg_call([&] {
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (hashes.size() + 1)));
    for (size_t i = 0; i < hashes.size(); ++i) {
      bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + 32));
      SET_VARSIZE(b, VARHDRSZ + 32);
      std::memcpy(VARDATA(b), hashes[i].data(), 32);
      elems[i] = PointerGetDatum(b);
    }
    return PointerGetDatum(
        construct_array(elems, static_cast<int>(hashes.size()), BYTEAOID, -1, false, TYPALIGN_INT));
  });
}

using safe::text_datum;

}  // namespace

// ves.canonical_json(jsonb) -> text
PGVES_FUNCTION(ves_canonical_json) {
  require_args(fcinfo, 1);
  return text_datum(
      pgves::core::jcs::canonicalize(pgves::core::json::parse(jsonb_text(PG_GETARG_JSONB_P(0)))));
}

// ves.canonical_json_text(text) -> text: parses the text itself, so duplicate
// keys are refused (jsonb would keep the last one silently).
PGVES_FUNCTION(ves_canonical_json_text) {
  require_args(fcinfo, 1);
  std::string input = safe::text_string(PG_GETARG_DATUM(0));
  return text_datum(pgves::core::jcs::canonicalize_text(input));
}

// ves.payload_hash(jsonb) -> bytea
PGVES_FUNCTION(ves_payload_hash) {
  require_args(fcinfo, 1);
  auto canonical =
      pgves::core::jcs::canonicalize(pgves::core::json::parse(jsonb_text(PG_GETARG_JSONB_P(0))));
  auto h = ves::payload_plain_hash(canonical);
  return bytes_datum(h.data(), h.size());
}

// ves.signing_hash(event_id uuid) -> bytea, from the stored event.
PGVES_FUNCTION(ves_signing_hash) {
  StoredEvent e = stored_event_argument(fcinfo, 0);
  auto h = ves::signing_hash(e.event);
  return bytes_datum(h.data(), h.size());
}

// ves.leaf_hash(tenant_id, store_id, sequence_number, signing_hash, agent_signature) -> bytea
PGVES_FUNCTION(ves_leaf_hash) {
  require_args(fcinfo, 5);
  auto h = ves::leaf_hash(uuid_arg(fcinfo, 0), uuid_arg(fcinfo, 1), sequence_arg(fcinfo, 2),
                          fixed_bytes<32>(PG_GETARG_DATUM(3), "signing_hash"),
                          fixed_bytes<64>(PG_GETARG_DATUM(4), "agent_signature"));
  return bytes_datum(h.data(), h.size());
}

// ves.receipt_hash(tenant_id, store_id, event_id, sequence_number, signing_hash) -> bytea
PGVES_FUNCTION(ves_receipt_hash) {
  require_args(fcinfo, 5);
  auto h = ves::receipt_hash(uuid_arg(fcinfo, 0), uuid_arg(fcinfo, 1), uuid_arg(fcinfo, 2),
                             sequence_arg(fcinfo, 3),
                             fixed_bytes<32>(PG_GETARG_DATUM(4), "signing_hash"));
  return bytes_datum(h.data(), h.size());
}

// ves.stream_id(tenant_id, store_id) -> bytea
PGVES_FUNCTION(ves_stream_id) {
  require_args(fcinfo, 2);
  auto h = ves::stream_id(uuid_arg(fcinfo, 0), uuid_arg(fcinfo, 1));
  return bytes_datum(h.data(), h.size());
}

// ves.merkle_root(leaves bytea[]) -> bytea
PGVES_FUNCTION(ves_merkle_root) {
  require_args(fcinfo, 1);
  auto h = ves::merkle_root(hash_array(PG_GETARG_DATUM(0), "leaves"));
  return bytes_datum(h.data(), h.size());
}

// ves.merkle_proof(leaves bytea[], leaf_index int) -> bytea[]
PGVES_FUNCTION(ves_merkle_proof) {
  require_args(fcinfo, 2);
  auto leaves = hash_array(PG_GETARG_DATUM(0), "leaves");
  int32 index = PG_GETARG_INT32(1);
  if (index < 0 || static_cast<size_t>(index) >= leaves.size())
    throw VesError(sqlstate::invalid_argument, "leaf_index is outside the leaves", {},
                   "Pass 0 <= leaf_index < array_length(leaves, 1).");
  return hash_array_datum(ves::inclusion_proof(leaves, static_cast<size_t>(index)));
}

// ves.verify_merkle_proof(leaf, proof bytea[], leaf_index, root) -> boolean
PGVES_FUNCTION(ves_verify_merkle_proof) {
  require_args(fcinfo, 4);
  int64 index = PG_GETARG_INT64(2);
  if (index < 0) PG_RETURN_BOOL(false);
  bool ok = ves::verify_inclusion(
      fixed_bytes<32>(PG_GETARG_DATUM(0), "leaf"), hash_array(PG_GETARG_DATUM(1), "proof"),
      static_cast<uint64>(index), fixed_bytes<32>(PG_GETARG_DATUM(3), "root"));
  PG_RETURN_BOOL(ok);
}
