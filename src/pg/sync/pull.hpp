// Pulling VES streams from sources (destinations with "pull": true; README
// "Pulling from a sequencer"). A page is read through a Transport outside
// any transaction or lock (the worker) or holding no lock (ves.pull_events),
// then applied in one transaction: every event is verified (the envelope's
// stream and sequence number and the receipt by core/ves/pull.hpp, the
// payload hash, key and signature as ves.ingest_event checks them), the
// contiguous verified prefix is stored exactly as signed and applied
// (ves._apply_ingested), and the cursor moves past it in that transaction.
// An event that does not verify stops the stream with a security alert
// until an operator acknowledges it.
#pragma once

#include "core/ves/ves.hpp"
#include "pg/sync/http_engine.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pgves::pg::pull {

// Where pages come from: the source's sequencer over HTTP
// (GET /api/v1/events), or another pg_ves database's
// ves.sequenced_events over libpq (ves_postgres, plugged in at merge).
// fetch answers the JSON text of {"events": [items]}, items as the mock
// sequencer serves them (test/mock/README.md).
class Transport {
 public:
  struct Page {
    bool ok = false;
    std::string body;                 // when ok
    std::string error;                // when not
    bool retry = true;                // false: an operator must fix something (credentials, URL)
    std::int64_t retry_after_ms = 0;  // the source asked to wait
  };
  virtual ~Transport() = default;
  virtual Page fetch(const core::ves::Uuid &tenant, const core::ves::Uuid &store, std::int64_t from,
                     std::int64_t limit) = 0;
};

// Called by the worker loop every round, outside any transaction: pulls
// the sources that are due (every pull_interval_ms, at once again after a
// full page, later after failures). A ves_sequencer source's page is
// requested on the worker's engine beside its deliveries and applied in a
// later round, once absorb() has taken its answer. Errors are logged, never
// thrown. Returns how long the loop may wait before calling again.
long worker_round(HttpEngine &engine);

// Takes the answers to page requests out of what the engine completed.
void absorb(std::vector<HttpResult> &completed);

// Forgets the page requests in flight (the worker starts over after an
// error; their sources are pulled again from their cursors).
void forget_fetches();

}  // namespace pgves::pg::pull
