#include "core/ves/ves.hpp"

#include "core/json/canonical_json.hpp"
#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::ves {

namespace {

// Builds a preimage with the encodings of section 3: domain prefix as raw
// ASCII, integers big-endian, UUIDs as their 16 bytes, strings length-prefixed.
class Preimage {
 public:
  explicit Preimage(std::string_view domain) { buf_.append(domain); }

  Preimage &bytes(crypto::ByteView b) {
    buf_.append(reinterpret_cast<const char *>(b.data), b.size);
    return *this;
  }
  Preimage &u32(std::uint32_t v) { return be(v, 4); }
  Preimage &u64(std::uint64_t v) { return be(v, 8); }
  Preimage &str(std::string_view s) {
    if (s.size() > UINT32_MAX) throw Error("invalid_event", "string field longer than 4 GiB");
    u32(static_cast<std::uint32_t>(s.size()));
    buf_.append(s);
    return *this;
  }
  Hash32 sha256() const { return crypto::sha256_32(buf_); }

 private:
  std::string buf_;

  Preimage &be(std::uint64_t v, int width) {
    for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) buf_ += static_cast<char>(v >> shift);
    return *this;
  }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Uuid parse_uuid(std::string_view text) {
  Uuid id{};
  bool ok = text.size() == 36;
  for (std::size_t i = 0, n = 0; ok && i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      ok = text[i] == '-';
      continue;
    }
    const int v = hex_value(text[i]);
    if (!(ok = v >= 0)) break;
    id[n / 2] |= static_cast<std::uint8_t>(n % 2 == 0 ? v << 4 : v);
    ++n;
  }
  if (!ok) throw Error("invalid_uuid", "\"" + std::string(text.substr(0, 64)) + "\" is not a UUID");
  return id;
}

std::string format_uuid(const Uuid &id) {
  const std::string hex = crypto::bin2hex(id);
  return hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' +
         hex.substr(16, 4) + '-' + hex.substr(20);
}

Hash32 payload_plain_hash(std::string_view canonical_payload) {
  return Preimage("VES_PAYLOAD_PLAIN_V1").bytes(canonical_payload).sha256();
}

Hash32 payload_plain_hash_of_json(std::string_view json_text) {
  return payload_plain_hash(jcs::canonicalize(json::parse(json_text)));
}

Hash32 signing_hash(const Event &e) {
  return Preimage("VES_EVENTSIG_V1")
      .u32(e.ves_version)
      .bytes(e.tenant_id)
      .bytes(e.store_id)
      .bytes(e.event_id)
      .bytes(e.source_agent_id)
      .u32(e.agent_key_id)
      .str(e.entity_type)
      .str(e.entity_id)
      .str(e.event_type)
      .str(e.created_at)
      .u32(e.payload_kind)
      .bytes(e.payload_plain_hash)
      .bytes(e.payload_cipher_hash)
      .sha256();
}

void sign_event(Event &e, const crypto::SecretBytes &secret_key) {
  if (e.payload_kind != 0 || !e.payload)
    throw Error("invalid_event", "only plaintext events with a payload can be signed");
  e.payload_plain_hash = payload_plain_hash(jcs::canonicalize(*e.payload));
  e.payload_cipher_hash = {};
  e.agent_signature = crypto::sign_detached_64(signing_hash(e), secret_key);
}

void check_payload_hashes(const Event &e) {
  if (e.payload_kind != 0) return;
  if (!e.payload) throw Error("invalid_event", "plaintext event without a payload");
  if (payload_plain_hash(jcs::canonicalize(*e.payload)) != e.payload_plain_hash)
    throw Error("hash_mismatch", "payload_plain_hash does not match the canonical payload");
  if (e.payload_cipher_hash != Hash32{})
    throw Error("hash_mismatch", "payload_cipher_hash of a plaintext event must be zero");
}

bool verify_signature(const Event &e, const PublicKey32 &public_key) {
  return crypto::verify_detached(e.agent_signature, signing_hash(e), public_key);
}

Hash32 leaf_hash(const Uuid &tenant_id, const Uuid &store_id, std::uint64_t sequence_number,
                 const Hash32 &signing_hash, const Signature64 &agent_signature) {
  return Preimage("VES_LEAF_V1")
      .bytes(tenant_id)
      .bytes(store_id)
      .u64(sequence_number)
      .bytes(signing_hash)
      .bytes(agent_signature)
      .sha256();
}

Hash32 receipt_hash(const Uuid &tenant_id, const Uuid &store_id, const Uuid &event_id,
                    std::uint64_t sequence_number, const Hash32 &signing_hash) {
  return Preimage("VES_RECEIPT_V1")
      .bytes(tenant_id)
      .bytes(store_id)
      .bytes(event_id)
      .u64(sequence_number)
      .bytes(signing_hash)
      .sha256();
}

Hash32 stream_id(const Uuid &tenant_id, const Uuid &store_id) {
  return Preimage("VES_STREAM_V1").bytes(tenant_id).bytes(store_id).sha256();
}

const Hash32 &pad_leaf() {
  static const Hash32 pad = Preimage("VES_PAD_LEAF_V1").sha256();
  return pad;
}

Hash32 node_hash(const Hash32 &left, const Hash32 &right) {
  return Preimage("VES_NODE_V1").bytes(left).bytes(right).sha256();
}

namespace {

// Padding the leaves to a power of two is equivalent to giving an odd level
// one more node equal to the root of an all-padding subtree of that height,
// which keeps the work proportional to the real leaves.
class PadNodes {
 public:
  const Hash32 &at(std::size_t level) {
    while (nodes_.size() <= level) nodes_.push_back(node_hash(nodes_.back(), nodes_.back()));
    return nodes_[level];
  }

 private:
  std::vector<Hash32> nodes_{pad_leaf()};
};

}  // namespace

Hash32 merkle_root(const std::vector<Hash32> &leaves) {
  if (leaves.empty()) return Hash32{};
  PadNodes pads;
  std::vector<Hash32> level = leaves;
  for (std::size_t height = 0; level.size() > 1; ++height) {
    if (level.size() % 2 != 0) level.push_back(pads.at(height));
    for (std::size_t i = 0; i < level.size() / 2; ++i)
      level[i] = node_hash(level[2 * i], level[2 * i + 1]);
    level.resize(level.size() / 2);
  }
  return level.front();
}

std::vector<Hash32> inclusion_proof(const std::vector<Hash32> &leaves, std::size_t index) {
  if (index >= leaves.size())
    throw Error("invalid_proof_index", "leaf index " + std::to_string(index) +
                                           " is outside a batch of " +
                                           std::to_string(leaves.size()));
  PadNodes pads;
  std::vector<Hash32> proof;
  std::vector<Hash32> level = leaves;
  for (std::size_t height = 0; level.size() > 1; ++height, index /= 2) {
    if (level.size() % 2 != 0) level.push_back(pads.at(height));
    proof.push_back(level[index ^ 1]);
    for (std::size_t i = 0; i < level.size() / 2; ++i)
      level[i] = node_hash(level[2 * i], level[2 * i + 1]);
    level.resize(level.size() / 2);
  }
  return proof;
}

bool verify_inclusion(const Hash32 &leaf, const std::vector<Hash32> &proof, std::uint64_t index,
                      const Hash32 &root) {
  if (proof.size() < 64 && (index >> proof.size()) != 0) return false;
  Hash32 current = leaf;
  for (std::size_t d = 0; d < proof.size(); ++d) {
    const bool sibling_on_left = d < 64 && ((index >> d) & 1) != 0;
    current = sibling_on_left ? node_hash(proof[d], current) : node_hash(current, proof[d]);
  }
  return current == root;
}

}  // namespace pgves::core::ves
