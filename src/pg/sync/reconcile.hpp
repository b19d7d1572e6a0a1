// Reconciliation: reading what commerce platforms hold for mapped listings
// (ves.reconcile, src/sql/93_inbound.sql records what differs), and the
// sync worker's share of the inbound side: draining security alerts,
// reconciling each platform destination every reconcile_interval and at
// once when a listing turned stale, purging old webhook delivery ids.
#pragma once

#include "pg/sync/http_engine.hpp"

#include <vector>

namespace pgves::pg::reconcile {

// Called by the worker loop every round (outside any transaction), with
// whether the round recorded outcomes (a listing may have turned stale);
// decides itself what is due, so most calls cost a few atomic reads. Its
// platform calls (reconciliation reads a slice at a time, questions about
// accepted batches) go out on the worker's engine beside its deliveries;
// their answers come back through absorb().
// Errors are logged and retried later, never thrown. Returns how long the
// loop may wait before calling again (a stale listing is read within about
// a second of being recorded, without the worker polling while nothing
// happens).
long worker_round(HttpEngine &engine, bool recorded);

// Takes the answers to its platform calls (reconciliation reads, questions
// about accepted batches) out of what the engine completed (the rest is the
// deliverer's).
void absorb(std::vector<HttpResult> &completed);

// Forgets the calls under way (the worker starts over after an error:
// reconciliation runs go on from the place last recorded, batches stay due).
void forget_calls();

}  // namespace pgves::pg::reconcile
