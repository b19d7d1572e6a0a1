// The order state machine: which order, payment and return events may follow
// which. An event whose prerequisite has not happened yet may still be
// waiting somewhere (platforms deliver out of order): that is "hold". An
// event the order can never accept (a shipment after a cancel) is "reject".
#pragma once

#include <string>
#include <string_view>

#include "core/json/json.hpp"

namespace pgves::core::order {

struct State {
  std::string status = "none";   // none, created, shipped, delivered, cancelled
  std::string payment = "none";  // none, authorized, captured, failed, partially_refunded, refunded
  std::string ret = "none";      // none, requested, approved, rejected, received, refunded
};

enum class Verdict { apply, hold, reject };
const char *name(Verdict v);

struct Transition {
  Verdict verdict = Verdict::reject;
  State next;                // the state after the event when verdict is apply
  std::string reason;        // why it was held or rejected, for the error message
  bool bad_payload = false;  // rejected for what the payload lacks, not for the order's state
};

// True for the event types this machine knows (order.*, payment.*, return.*).
bool known_event_type(std::string_view event_type);

// order.shipped needs a non-empty string "tracking_number" in its payload.
Transition transition(const State &s, std::string_view event_type, const json::Value &payload);

}  // namespace pgves::core::order
