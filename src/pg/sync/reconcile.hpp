// Reconciliation: reading what commerce platforms hold for mapped listings
// (ves.reconcile, src/sql/93_inbound.sql records what differs), and the
// sync worker's share of the inbound side: draining security alerts,
// reconciling each platform destination every reconcile_interval and at
// once when a listing turned stale, purging old webhook delivery ids.
#pragma once

namespace pgves::pg::reconcile {

// Called by the worker loop every round (outside any transaction), with
// whether the round recorded outcomes (a listing may have turned stale);
// decides itself what is due, so most calls cost a few atomic reads. Errors
// are logged and retried later, never thrown. Returns how long the loop may
// wait before calling again (a stale listing is read within about a second
// of being recorded, without the worker polling while nothing happens).
long worker_round(bool recorded);

}  // namespace pgves::pg::reconcile
