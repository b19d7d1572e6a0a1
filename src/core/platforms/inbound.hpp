// What pg_ves does with a message a commerce platform sent it, once its
// adapter verified and parsed it (Adapter::verify_inbound, parse_inbound):
// the order event each platform status stands for, and the content as the
// JSON document ves.receive_webhook applies. Decided here, once, so the
// vocabulary is unit-tested and SQL only writes rows.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"

namespace pgves::core {

// The order event (src/core/state/order_state.cpp's vocabulary) a
// platform's order status word (lowercased) stands for, or "" when pg_ves
// records nothing for it. Statuses of an open order map to order.created
// (ves.receive_webhook records order.updated for an order it already has).
std::string_view order_event_for_status(std::string_view status);

// The first non-empty string member "tracking_number" anywhere in value
// (depth first, in document order), as platforms nest it (Shopify:
// fulfillments[]).
std::optional<std::string> find_tracking_number(const json::Value &value);

// The content as one JSON object for SQL:
//   {"delivery_id", "topic",
//    "stock":  [{"key", "quantity", "observed_at_ms"}],
//    "orders": [{"order_id", "status", "event_type" (or null),
//                "payload": {"platform", "topic", "status", "order",
//                            "tracking_number"?}}]}
// delivery_id is the platform's, or "sha256:<hex of body>" when it sent none,
// so that the same message delivered twice is recognised either way.
std::string inbound_content_json(const InboundContent &content, std::string_view kind,
                                 std::string_view body);

}  // namespace pgves::core
