#include "core/state/order_state.hpp"

#include <algorithm>
#include <initializer_list>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::order {
namespace {

// How far along each track is; an event needing a later point than the
// order has reached may be early, one needing an earlier point is late.
int status_rank(std::string_view s) {
  if (s == "none") return 0;
  if (s == "created") return 1;
  if (s == "shipped") return 2;
  if (s == "delivered") return 3;
  return 4;  // cancelled
}

bool in(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

Transition apply(State next) {
  Transition t;
  t.verdict = Verdict::apply;
  t.next = std::move(next);
  return t;
}

Transition hold(std::string reason) {
  Transition t;
  t.verdict = Verdict::hold;
  t.reason = std::move(reason);
  return t;
}

Transition reject(std::string reason) {
  Transition t;
  t.verdict = Verdict::reject;
  t.reason = std::move(reason);
  return t;
}

Transition order_event(const State &s, std::string_view what, const json::Value &payload) {
  State n = s;
  const std::string &st = s.status;
  if (what == "created") {
    if (st != "none") return reject("the order already exists (status " + st + ")");
    n.status = "created";
    return apply(n);
  }
  if (what == "shipped") {
    // A shipment without a tracking number is never valid, early or not.
    const json::Value *tn = payload.find("tracking_number");
    if (tn == nullptr || tn->kind() != json::Kind::string || tn->as_string().empty()) {
      Transition t = reject("order.shipped must carry a non-empty \"tracking_number\"");
      t.bad_payload = true;
      return t;
    }
  }
  if (st == "none") return hold("the order has not been created yet");
  if (what == "updated") {
    if (st == "cancelled") return reject("the order was cancelled");
    return apply(n);
  }
  if (what == "shipped") {
    if (st == "cancelled") return reject("the order was cancelled; nothing ships after a cancel");
    if (st != "created") return reject("the order has already shipped (status " + st + ")");
    n.status = "shipped";
    return apply(n);
  }
  if (what == "delivered") {
    if (st == "cancelled") return reject("the order was cancelled");
    if (st == "created") return hold("the order has not shipped yet");
    if (st != "shipped") return reject("the order was already delivered");
    n.status = "delivered";
    return apply(n);
  }
  if (what == "cancelled") {
    if (st == "cancelled") return reject("the order is already cancelled");
    if (status_rank(st) >= status_rank("shipped"))
      return reject("the order has " + st + "; a shipped order is returned, not cancelled");
    n.status = "cancelled";
    return apply(n);
  }
  return reject("unknown order event order." + std::string(what));
}

Transition payment_event(const State &s, std::string_view what) {
  if (s.status == "none") return hold("the order has not been created yet");
  State n = s;
  const std::string &p = s.payment;
  auto to = [&](const char *next, std::initializer_list<std::string_view> from,
                std::initializer_list<std::string_view> early) -> Transition {
    if (in(p, from)) {
      n.payment = next;
      return apply(n);
    }
    if (in(p, early))
      return hold("payment is " + p + "; payment." + std::string(what) +
                  " needs an earlier step first");
    return reject("payment is " + p + "; payment." + std::string(what) + " cannot follow");
  };
  if (what == "authorized") return to("authorized", {"none", "failed"}, {});
  if (what == "captured") return to("captured", {"none", "authorized"}, {});
  if (what == "failed") return to("failed", {"none", "authorized"}, {});
  if (what == "partially_refunded")
    return to("partially_refunded", {"captured", "partially_refunded"}, {"none", "authorized"});
  if (what == "refunded")
    return to("refunded", {"captured", "partially_refunded"}, {"none", "authorized"});
  return reject("unknown payment event payment." + std::string(what));
}

Transition return_event(const State &s, std::string_view what) {
  if (s.status == "none") return hold("the order has not been created yet");
  if (s.status == "cancelled") return reject("the order was cancelled; there is nothing to return");
  State n = s;
  const std::string &r = s.ret;
  auto to = [&](const char *next, std::string_view from,
                std::initializer_list<std::string_view> early) -> Transition {
    if (r == from) {
      n.ret = next;
      return apply(n);
    }
    if (in(r, early))
      return hold("the return is " + r + "; return." + std::string(what) +
                  " needs an earlier step first");
    return reject("the return is " + r + "; return." + std::string(what) + " cannot follow");
  };
  if (what == "requested") {
    if (s.status != "delivered") return hold("the order has not been delivered yet");
    return to("requested", "none", {});
  }
  if (what == "approved") return to("approved", "requested", {"none"});
  if (what == "rejected") return to("rejected", "requested", {"none"});
  if (what == "received") return to("received", "approved", {"none", "requested"});
  if (what == "refunded") return to("refunded", "received", {"none", "requested", "approved"});
  return reject("unknown return event return." + std::string(what));
}

}  // namespace

const char *name(Verdict v) {
  switch (v) {
    case Verdict::apply:
      return "apply";
    case Verdict::hold:
      return "hold";
    case Verdict::reject:
      return "reject";
  }
  return "reject";
}

bool known_event_type(std::string_view t) {
  static const std::initializer_list<std::string_view> known = {
      "order.created",    "order.updated",    "order.shipped",
      "order.delivered",  "order.cancelled",  "payment.authorized",
      "payment.captured", "payment.failed",   "payment.partially_refunded",
      "payment.refunded", "return.requested", "return.approved",
      "return.rejected",  "return.received",  "return.refunded"};
  return in(t, known);
}

Transition transition(const State &s, std::string_view event_type, const json::Value &payload) {
  if (!known_event_type(event_type))
    return reject("unknown order event type \"" + std::string(event_type) + "\"");
  auto dot = event_type.find('.');
  std::string_view track = event_type.substr(0, dot), what = event_type.substr(dot + 1);
  if (track == "order") return order_event(s, what, payload);
  if (track == "payment") return payment_event(s, what);
  return return_event(s, what);
}

}  // namespace pgves::core::order
