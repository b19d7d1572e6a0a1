// Agent keys and event signing.
//
// Local agents: each (tenant, store) that appends gets an agent with an
// Ed25519 key, created on its first append (documented in the README) and
// rotated with ves.rotate_agent_key. Private keys are stored encrypted with
// crypto_secretbox under the server key, a 32-byte file named by
// ves.server_key_file that only the server's OS user can read, or printed in
// hex by ves.server_key_command. Decrypted keys
// live in sodium_malloc memory, cached per backend until any backend changes
// a key (the key epoch in shared memory).
#include "pg/store/keys.hpp"

#include "core/json/canonical_json.hpp"
#include "core/crypto/crypto.hpp"
#include "core/json/json.hpp"
#include "core/ves/timestamp.hpp"
#include "core/ves/ves.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/safe.hpp"
#include "pg/store/read_fence.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/base/tenant.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "port.h"
#include "storage/fd.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgves::pg::keys {
namespace {

namespace crypto = core::crypto;
using Bytes = std::vector<uint8>;

constexpr size_t kBoxNonce = crypto_secretbox_NONCEBYTES;
constexpr size_t kBoxMac = crypto_secretbox_MACBYTES;
constexpr size_t kSecretKey = crypto_sign_SECRETKEYBYTES;

// --- the server key ---------------------------------------------------------

std::string server_key_path() {
  std::string path = settings::server_key_file ? settings::server_key_file : "";
  if (path.empty())
    throw VesError(sqlstate::key_unavailable, "ves.server_key_file is empty", {},
                   "Set ves.server_key_file to the file that holds the server key.");
  if (path[0] != '/') path = std::string(DataDir) + "/" + path;
  return path;
}

[[noreturn]] void key_file_error(const std::string &what, const std::string &path) {
  throw VesError(sqlstate::key_unavailable, what + ": " + path + ": " + std::strerror(errno), {},
                 "The server key file must be a 32-byte file readable only by the server's OS "
                 "user (mode 0600).");
}

crypto::SecretBytes create_server_key(const std::string &path) {
  crypto::SecretBytes key(crypto_secretbox_KEYBYTES);
  randombytes_buf(key.data(), key.size());
  // The data directory's own file mode: 0600, or 0640 with group access.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, pg_file_create_mode);
  if (fd < 0) key_file_error("cannot create the server key file", path);
  bool ok =
      ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) key_file_error("cannot write the server key file", path);
  return key;
}

crypto::SecretBytes read_server_key(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) return create_server_key(path);
    key_file_error("cannot open the server key file", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    key_file_error("cannot stat the server key file", path);
  }
  // Group access only where the data directory allows it (initdb -g).
  mode_t forbidden = (data_directory_mode & 0070) ? 0027 : 0077;
  if ((st.st_mode & forbidden) != 0) {
    ::close(fd);
    throw VesError(
        sqlstate::key_unavailable, "the server key file " + path + " is readable by others", {},
        "chmod 600 the file (640 with group access); pg_ves refuses a key other users can read.");
  }
  crypto::SecretBytes key(crypto_secretbox_KEYBYTES);
  ssize_t n = ::read(fd, key.data(), key.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size()) || st.st_size != static_cast<off_t>(key.size()))
    throw VesError(sqlstate::key_unavailable,
                   "the server key file " + path + " does not hold 32 bytes", {},
                   "Restore the original key file; without it no agent private key can be used.");
  return key;
}

[[noreturn]] void key_command_error(const std::string &what, const std::string &detail = {}) {
  throw VesError(sqlstate::key_unavailable, "ves.server_key_command " + what, detail,
                 "The command must exit with status 0 and print the 32-byte server key as 64 "
                 "hexadecimal digits (a trailing newline is allowed) on standard output; fix it "
                 "in postgresql.conf and reload.");
}

int hex_value(uint8 c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Runs `command` through the shell and reads at most `capacity` bytes of its
// standard output into `buf`; false when it could not be started. A full
// buffer is wrong output already; closing the pipe then ends a command that
// keeps writing (SIGPIPE) instead of reading it forever.
bool read_command_output(const std::string &command, uint8 *buf, size_t capacity, size_t *len,
                         int *status) {
  return pg_call([&] {
    FILE *pipe = OpenPipeStream(command.c_str(), "r");
    if (!pipe) return false;
    size_t n;
    while (*len < capacity && (n = fread(buf + *len, 1, capacity - *len, pipe)) > 0) *len += n;
    *status = ClosePipeStream(pipe);
    return true;
  });
}

// How a child process ended, as PostgreSQL words it.
std::string wait_status_text(int status) {
  return pg_call([&] {
    char *text = wait_result_to_str(status);
    std::string copy(text);
    pfree(text);
    return copy;
  });
}

// Runs ves.server_key_command (through the shell, from the data directory,
// like ssl_passphrase_command) and decodes its standard output. The output
// only ever lives in sodium_malloc memory, and no message quotes it: a wrong
// output is described by its length alone.
crypto::SecretBytes run_server_key_command(const std::string &command) {
  constexpr size_t kCapacity = 1024;
  crypto::SecretBytes out(kCapacity);
  size_t len = 0;
  bool overflow = false;
  int status = 0;
  if (!read_command_output(command, out.data(), kCapacity, &len, &status))
    key_command_error("could not be started", std::string("popen: ") + std::strerror(errno));
  overflow = len == kCapacity;
  if (status != 0) key_command_error("failed", "The " + wait_status_text(status) + ".");
  // 64 hex digits, then at most whitespace (the newline of echo or cat).
  size_t end = len;
  while (end > 0 && (out.data()[end - 1] == '\n' || out.data()[end - 1] == '\r' ||
                     out.data()[end - 1] == ' ' || out.data()[end - 1] == '\t'))
    --end;
  crypto::SecretBytes key(crypto_secretbox_KEYBYTES);
  bool hex = end == 2 * key.size();
  for (size_t i = 0; hex && i < key.size(); ++i) {
    int hi = hex_value(out.data()[2 * i]), lo = hex_value(out.data()[2 * i + 1]);
    if (hi < 0 || lo < 0)
      hex = false;
    else
      key.data()[i] = static_cast<uint8>(hi << 4 | lo);
  }
  if (!hex) {
    std::string printed =
        overflow ? std::to_string(kCapacity) + " bytes or more" : std::to_string(len) + " bytes";
    key_command_error("printed something other than a server key",
                      "It printed " + printed + "; expected 64 hexadecimal digits.");
  }
  return key;
}

// ves.server_key_command, when set, takes precedence over ves.server_key_file.
// The postmaster runs the command once at start (preload_server_key) and
// every backend it forks inherits the key; a backend loads it itself when
// that failed, or when a reload changed the setting naming its source.
const crypto::SecretBytes &server_key() {
  static std::optional<crypto::SecretBytes> key;
  static std::string loaded_from;
  std::string command = settings::server_key_command ? settings::server_key_command : "";
  std::string source = command.empty() ? "file:" + server_key_path() : "command:" + command;
  if (!key || loaded_from != source) {
    key.reset();
    if (command.empty())
      key.emplace(read_server_key(server_key_path()));
    else
      key.emplace(run_server_key_command(command));
    loaded_from = source;
  }
  return *key;
}

// crypto_secretbox under the server key: nonce || box. Shared by agent
// private keys and destination credentials.
Bytes seal_bytes(const uint8 *data, size_t len) {
  Bytes box(kBoxNonce + kBoxMac + len);
  randombytes_buf(box.data(), kBoxNonce);
  crypto_secretbox_easy(box.data() + kBoxNonce, data, len, box.data(), server_key().data());
  return box;
}

Bytes seal(const crypto::SecretBytes &secret) { return seal_bytes(secret.data(), secret.size()); }

// False when the box was not made with this server key (or was altered).
bool open_bytes(const uint8 *box, size_t len, uint8 *out) {
  if (len < kBoxNonce + kBoxMac) return false;
  return crypto_secretbox_open_easy(out, box + kBoxNonce, len - kBoxNonce, box,
                                    server_key().data()) == 0;
}

crypto::SecretBytes open_box(const Bytes &box) {
  if (box.size() != kBoxNonce + kBoxMac + kSecretKey)
    throw VesError(sqlstate::key_unavailable, "a stored agent private key has the wrong size");
  crypto::SecretBytes secret(kSecretKey);
  if (!open_bytes(box.data(), box.size(), secret.data()))
    throw VesError(sqlstate::key_unavailable, "cannot decrypt an agent private key",
                   "The server key does not match the key the agent key was encrypted with.",
                   "Restore the server key file named by ves.server_key_file, or rotate the "
                   "agent key with ves.rotate_agent_key.");
  return secret;
}

// --- SPI helpers (every call goes through pg_call: C++ objects are alive) ----

const Oid kUuid = UUIDOID, kInt4 = INT4OID, kBytea = BYTEAOID;

SavedPlan find_signer = {
    "SELECT k.agent_id, k.key_id, s.secret_box FROM ves.local_agents a "
    "JOIN ves.agent_key_store k ON k.tenant_id = a.tenant_id AND k.agent_id = a.agent_id "
    "JOIN ves.agent_key_secrets s ON s.tenant_id = k.tenant_id AND s.agent_id = k.agent_id "
    "  AND s.key_id = k.key_id "
    "WHERE a.tenant_id = $1 AND a.store_id = $2 AND k.status = 'active' "
    "ORDER BY k.key_id DESC LIMIT 1",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan add_agent = {
    "INSERT INTO ves.local_agents (tenant_id, store_id, agent_id) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING",
    3,
    {kUuid, kUuid, kUuid},
    nullptr};
SavedPlan lock_agent = {
    "SELECT agent_id FROM ves.local_agents WHERE tenant_id = $1 AND store_id = $2 FOR UPDATE",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan next_key_id = {
    "SELECT coalesce(max(key_id), 0) + 1 FROM ves.agent_key_store "
    "WHERE tenant_id = $1 AND agent_id = $2",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan retire_keys = {
    "UPDATE ves.agent_key_store SET status = 'rotated' "
    "WHERE tenant_id = $1 AND agent_id = $2 AND status = 'active' AND local",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan insert_key = {
    "INSERT INTO ves.agent_key_store (tenant_id, agent_id, key_id, public_key, local, status) "
    "VALUES ($1, $2, $3, $4, true, 'active')",
    4,
    {kUuid, kUuid, kInt4, kBytea},
    nullptr};
SavedPlan insert_secret = {
    "INSERT INTO ves.agent_key_secrets (tenant_id, agent_id, key_id, secret_box) "
    "VALUES ($1, $2, $3, $4)",
    4,
    {kUuid, kUuid, kInt4, kBytea},
    nullptr};

Datum uuid_datum(const pg_uuid_t &u) { return UUIDPGetDatum(const_cast<pg_uuid_t *>(&u)); }

bytea *to_bytea(const uint8 *data, size_t len) {
  bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + len));
  SET_VARSIZE(b, VARHDRSZ + len);
  std::memcpy(VARDATA(b), data, len);
  return b;
}

struct Row {
  bool found = false;
  pg_uuid_t agent_id{};
  int32 key_id = 0;
  Bytes secret_box;
};

Row fetch_signer(const pg_uuid_t &tenant, const pg_uuid_t &store) {
  Row row;
  pg_call_void([&] {
    Datum args[2] = {uuid_datum(tenant), uuid_datum(store)};
    spi_run(find_signer, args, nullptr, false, SPI_OK_SELECT, 1);
    if (SPI_processed == 0) return;
    bool isnull;
    HeapTuple tup = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    row.found = true;
    row.agent_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
    row.key_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
    bytea *box = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
    const uint8 *p = reinterpret_cast<const uint8 *>(VARDATA_ANY(box));
    row.secret_box.assign(p, p + VARSIZE_ANY_EXHDR(box));
  });
  return row;
}

bool keys_changed_in_xact = false;
bool xact_callback_registered = false;

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT && keys_changed_in_xact) fence::bump_key_epoch();
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
      event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
    keys_changed_in_xact = false;
}

// Other backends drop their cached keys once this transaction commits.
void mark_keys_changed() {
  // The commit callback must not fail, so the shared memory it touches is
  // checked now, while the transaction can still roll back.
  fence::require_shmem();
  if (!xact_callback_registered) {
    RegisterXactCallback(on_xact, nullptr);
    xact_callback_registered = true;
  }
  keys_changed_in_xact = true;
}

pg_uuid_t random_uuid() {
  pg_uuid_t u;
  randombytes_buf(u.data, UUID_LEN);
  u.data[6] = (u.data[6] & 0x0f) | 0x40;
  u.data[8] = (u.data[8] & 0x3f) | 0x80;
  return u;
}

// The agent of (tenant, store), created as `candidate` when there is none,
// locked for the rest of the transaction.
pg_uuid_t lock_local_agent(const pg_uuid_t &tenant, const pg_uuid_t &store,
                           const pg_uuid_t &candidate) {
  return pg_call([&] {
    Datum args[3] = {uuid_datum(tenant), uuid_datum(store), uuid_datum(candidate)};
    spi_run(add_agent, args, nullptr, false, SPI_OK_INSERT);
    spi_run(lock_agent, args, nullptr, false, SPI_OK_SELECT, 1);
    bool isnull;
    return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
}

// Stores a new key of `agent` under the next key id, retiring the active one;
// returns the key id.
int32 store_next_key(const pg_uuid_t &tenant, const pg_uuid_t &agent, const crypto::PublicKey32 &pk,
                     const Bytes &box) {
  return pg_call([&] {
    Datum args[4] = {uuid_datum(tenant), uuid_datum(agent), 0, 0};
    spi_run(next_key_id, args, nullptr, false, SPI_OK_SELECT, 1);
    int32 key_id = static_cast<int32>(spi_int64(1, 1));
    spi_run(retire_keys, args, nullptr, false, SPI_OK_UPDATE);
    args[2] = Int32GetDatum(key_id);
    args[3] = PointerGetDatum(to_bytea(pk.data(), pk.size()));
    spi_run(insert_key, args, nullptr, false, SPI_OK_INSERT);
    args[3] = PointerGetDatum(to_bytea(box.data(), box.size()));
    spi_run(insert_secret, args, nullptr, false, SPI_OK_INSERT);
    mark_keys_changed();
    return key_id;
  });
}

struct NewKey {
  pg_uuid_t agent_id;
  int32 key_id;
  crypto::PublicKey32 public_key;
};

// Creates a new local key for (tenant, store): the agent's first, or the next
// key id when `rotate`. Returns the existing active key instead when
// `reuse_active` and another transaction created one meanwhile.
NewKey new_local_key(const pg_uuid_t &tenant, const pg_uuid_t &store, const pg_uuid_t *agent,
                     bool reuse_active, Row *reused) {
  NewKey out{};
  out.agent_id = lock_local_agent(tenant, store, agent ? *agent : random_uuid());
  if (reuse_active) {
    *reused = fetch_signer(tenant, store);
    if (reused->found) return out;
  }
  crypto::PublicKey32 pk;
  crypto::SecretBytes sk(kSecretKey);
  crypto::init();
  crypto_sign_keypair(pk.data(), sk.data());
  Bytes box = seal(sk);
  out.key_id = store_next_key(tenant, out.agent_id, pk, box);
  out.public_key = pk;
  return out;
}

// --- the per-backend signer cache -------------------------------------------

struct Signer {
  pg_uuid_t agent_id;
  int32 key_id;
  // Shared with the signing jobs of a batch, which may outlive this entry.
  std::shared_ptr<const crypto::SecretBytes> secret;
  uint64 epoch;
};

std::map<std::array<uint8, 32>, Signer> signers;

std::array<uint8, 32> cache_key(const pg_uuid_t &tenant, const pg_uuid_t &store) {
  std::array<uint8, 32> k;
  std::memcpy(k.data(), tenant.data, UUID_LEN);
  std::memcpy(k.data() + UUID_LEN, store.data, UUID_LEN);
  return k;
}

uint64 current_key_epoch() {
  return pg_call([] { return fence::key_epoch(); });
}

const Signer &signer_for(const pg_uuid_t &tenant, const pg_uuid_t &store) {
  uint64 epoch = current_key_epoch();
  auto key = cache_key(tenant, store);
  auto it = signers.find(key);
  if (it != signers.end() && it->second.epoch == epoch) return it->second;
  Row row = fetch_signer(tenant, store);
  if (!row.found) {
    NewKey created = new_local_key(tenant, store, nullptr, true, &row);
    if (!row.found) row = fetch_signer(tenant, store);
    (void)created;
  }
  Signer s{row.agent_id, row.key_id,
           std::make_shared<const crypto::SecretBytes>(open_box(row.secret_box)), epoch};
  signers.erase(key);
  return signers.emplace(key, std::move(s)).first->second;
}

std::string text_string(const text *t) { return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)); }

}  // namespace

std::vector<uint8> seal_secret(std::string_view secret) {
  crypto::init();
  return seal_bytes(reinterpret_cast<const uint8 *>(secret.data()), secret.size());
}

std::string open_secret(const uint8 *box, size_t len) {
  if (len < kBoxNonce + kBoxMac)
    throw VesError(sqlstate::key_unavailable, "a sealed destination credential is too short");
  std::string out(len - kBoxNonce - kBoxMac, '\0');
  if (!open_bytes(box, len, reinterpret_cast<uint8 *>(out.data()))) {
    sodium_memzero(out.data(), out.size());
    throw VesError(sqlstate::key_unavailable, "cannot decrypt a destination credential",
                   "The server key does not match the key the credential was sealed with.",
                   "Restore the server key file named by ves.server_key_file, or set the secret "
                   "again with ves.alter_destination.");
  }
  return out;
}

void payload_plain_hash(const Jsonb *payload, uint8 out[32]) {
  // The value json::parse gives for jsonb's text form, read from the jsonb
  // directly; the core canonicalises it. Numbers become IEEE doubles, as
  // RFC 8785 requires.
  auto hash = core::ves::payload_plain_hash(core::jcs::canonicalize(jsonb_value(payload)));
  std::memcpy(out, hash.data(), hash.size());
}

SigningJob prepare_signature(const pg_uuid_t &tenant, const pg_uuid_t &store,
                             const pg_uuid_t &event_id, const text *entity_type,
                             const text *entity_id, const text *event_type, Signature *sig) {
  const Signer &signer = signer_for(tenant, store);
  SigningJob job;
  core::ves::Event e;
  e.event_id = to_core_uuid(event_id);
  e.tenant_id = to_core_uuid(tenant);
  e.store_id = to_core_uuid(store);
  e.source_agent_id = to_core_uuid(signer.agent_id);
  e.agent_key_id = static_cast<uint32>(signer.key_id);
  e.entity_type = text_string(entity_type);
  e.entity_id = text_string(entity_id);
  e.event_type = text_string(event_type);
  int64 unix_micros =
      GetCurrentTimestamp() + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
  e.created_at = core::rfc3339_utc_millis(unix_micros);
  std::memcpy(e.payload_plain_hash.data(), sig->payload_plain_hash, 32);
  job.signing_hash = core::ves::signing_hash(e);
  job.secret = signer.secret;
  job.created_unix_micros = unix_micros;

  sig->agent_id = signer.agent_id;
  sig->key_id = signer.key_id;
  std::snprintf(sig->created_at, sizeof sig->created_at, "%s", e.created_at.c_str());
  return job;
}

void SigningJob::run() { signature = crypto::sign_detached_64(signing_hash, *secret); }

void sign(const pg_uuid_t &tenant, const pg_uuid_t &store, const pg_uuid_t &event_id,
          const text *entity_type, const text *entity_id, const text *event_type, Signature *sig) {
  SigningJob job =
      prepare_signature(tenant, store, event_id, entity_type, entity_id, event_type, sig);
  job.run();
  std::memcpy(sig->agent_signature, job.signature.data(), job.signature.size());
}

// Runs in the postmaster while it loads pg_ves, like ssl_passphrase_command:
// one shell for the server's life instead of one per backend. A failure is
// only logged here (the server still starts); backends then try again and
// raise VE023 where they need the key.
void preload_server_key() {
  if (!settings::server_key_command || settings::server_key_command[0] == '\0') return;
  char message[512] = {0};
  try {
    (void)server_key();
  } catch (const PgError &e) {
    std::snprintf(message, sizeof message, "%s", e.what());
  } catch (const std::exception &e) {
    std::snprintf(message, sizeof message, "%s", e.what());
  }
  if (message[0] != '\0')
    ereport(WARNING,
            (errcode(sqlstate::key_unavailable),
             errmsg("pg_ves could not load the server key at start: %s", message),
             errhint("Backends will run ves.server_key_command again when they need the key.")));
}

}  // namespace pgves::pg::keys

using namespace pgves::pg;

namespace {

Datum key_result(FunctionCallInfo fcinfo, const pg_uuid_t &agent, int32 key_id,
                 const pgves::core::crypto::PublicKey32 &pk) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "pg_ves: key functions must return a composite");
  desc = BlessTupleDesc(desc);
  pg_uuid_t *a = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  *a = agent;
  bytea *p = static_cast<bytea *>(palloc(VARHDRSZ + pk.size()));
  SET_VARSIZE(p, VARHDRSZ + pk.size());
  std::memcpy(VARDATA(p), pk.data(), pk.size());
  Datum values[3] = {UUIDPGetDatum(a), Int32GetDatum(key_id), PointerGetDatum(p)};
  bool nulls[3] = {false, false, false};
  return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

// Connects SPI and checks whether (tenant, store) has a local agent as the
// entry point needs: `rotate` requires one, creation refuses one.
void begin_key_entry(const pg_uuid_t &tenant, const pg_uuid_t &store, bool rotate) {
  pg_call_void([&] {
    tenant::check_access(&tenant);
    spi_connect();
    Datum args[2] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(&tenant)),
                     UUIDPGetDatum(const_cast<pg_uuid_t *>(&store))};
    int rc = SPI_execute_with_args(
        "SELECT 1 FROM ves.local_agents WHERE tenant_id = $1 AND store_id = $2", 2,
        const_cast<Oid *>(std::array<Oid, 2>{UUIDOID, UUIDOID}.data()), args, nullptr, false, 1);
    if (rc != SPI_OK_SELECT) elog(ERROR, "pg_ves: cannot read ves.local_agents");
    bool exists = SPI_processed > 0;
    if (rotate && !exists)
      ereport(ERROR, (errcode(sqlstate::not_found),
                      errmsg("no local agent key exists for this tenant and store"),
                      errhint("Create one with ves.create_agent_key, or append an event.")));
    if (!rotate && exists)
      ereport(ERROR, (errcode(sqlstate::already_exists),
                      errmsg("a local agent key already exists for this tenant and store"),
                      errhint("Use ves.rotate_agent_key to replace it with a new key id.")));
  });
}

// ves.create_agent_key / ves.rotate_agent_key share this body: `rotate`
// requires an existing local agent, creation refuses one.
Datum new_key_entry(FunctionCallInfo fcinfo, bool rotate) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw VesError(sqlstate::null_argument, "tenant_id and store_id must not be NULL", {},
                   "Name the tenant and store whose events the key signs.");
  pg_uuid_t tenant = *PG_GETARG_UUID_P(0);
  pg_uuid_t store = *PG_GETARG_UUID_P(1);
  bool has_agent = !rotate && !PG_ARGISNULL(2);
  pg_uuid_t agent{};
  if (has_agent) agent = *PG_GETARG_UUID_P(2);
  begin_key_entry(tenant, store, rotate);
  auto created = keys::new_local_key(tenant, store, has_agent ? &agent : nullptr, false, nullptr);
  safe::spi_finish();
  return key_result(fcinfo, created.agent_id, created.key_id, created.public_key);
}

}  // namespace

PGVES_FUNCTION(ves_create_agent_key) { return new_key_entry(fcinfo, false); }
PGVES_FUNCTION(ves_rotate_agent_key) { return new_key_entry(fcinfo, true); }

// Called by ves.revoke_agent_key so every backend drops cached keys at commit.
PGVES_FUNCTION(ves_keys_changed) {
  keys::mark_keys_changed();
  PG_RETURN_VOID();
}
