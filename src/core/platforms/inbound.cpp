#include "core/platforms/inbound.hpp"

#include <utility>

#include "core/crypto/crypto.hpp"
#include "core/json/canonical_json.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

std::string_view order_event_for_status(std::string_view status) {
  // Shopify topics (orders/create, /updated, /paid, /cancelled, /fulfilled,
  // /partially_fulfilled), TikTok Shop order_status values and Meta
  // Commerce order events, lowercased by their adapters.
  static const std::pair<std::string_view, std::string_view> table[] = {
      {"created", "order.created"},
      {"updated", "order.created"},
      {"pending", "order.created"},
      {"open", "order.created"},
      {"unpaid", "order.created"},
      {"on_hold", "order.created"},
      {"awaiting_shipment", "order.created"},
      {"awaiting_collection", "order.created"},
      {"partially_fulfilled", "order.created"},
      {"partially_shipping", "order.created"},
      {"processing", "order.created"},
      {"paid", "payment.captured"},
      {"refunded", "payment.refunded"},
      {"partially_refunded", "payment.partially_refunded"},
      {"cancelled", "order.cancelled"},
      {"canceled", "order.cancelled"},
      {"fulfilled", "order.shipped"},
      {"shipped", "order.shipped"},
      {"in_transit", "order.shipped"},
      {"delivered", "order.delivered"},
      {"completed", "order.delivered"},
  };
  for (const auto &[word, event] : table)
    if (word == status) return event;
  return {};
}

std::optional<std::string> find_tracking_number(const json::Value &value) {
  switch (value.kind()) {
    case json::Kind::object:
      for (const auto &[key, member] : value.as_object()) {
        if (key == "tracking_number" && member.kind() == json::Kind::string &&
            !member.as_string().empty())
          return member.as_string();
        if (auto found = find_tracking_number(member)) return found;
      }
      return std::nullopt;
    case json::Kind::array:
      for (const auto &element : value.as_array())
        if (auto found = find_tracking_number(element)) return found;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::string inbound_content_json(const InboundContent &content, std::string_view kind,
                                 std::string_view body) {
  using json::Value;
  std::string delivery = content.delivery_id;
  if (delivery.empty()) {
    const crypto::Hash32 h = crypto::sha256_32(crypto::ByteView(body));
    delivery = "sha256:" + crypto::bin2hex(crypto::ByteView(h));
  }
  Value::Array stock;
  for (const StockReport &s : content.stock)
    stock.emplace_back(
        Value::Object{{"key", s.platform_key},
                      {"quantity", static_cast<double>(s.quantity)},
                      {"observed_at_ms", static_cast<double>(s.observed_at_unix_ms)}});
  Value::Array orders;
  for (const OrderNotice &o : content.orders) {
    Value order;
    try {
      order = json::parse(o.payload.empty() ? std::string_view("{}") : std::string_view(o.payload));
    } catch (const Error &) {
      order = Value(o.payload);  // kept as text: what the platform sent
    }
    Value::Object payload{
        {"platform", std::string(kind)}, {"topic", content.topic}, {"status", o.status}};
    if (auto tracking = find_tracking_number(order))
      payload.emplace_back("tracking_number", *tracking);
    payload.emplace_back("order", std::move(order));
    const std::string_view event = order_event_for_status(o.status);
    orders.emplace_back(
        Value::Object{{"order_id", o.order_id},
                      {"status", o.status},
                      {"event_type", event.empty() ? Value(nullptr) : Value(std::string(event))},
                      {"payload", Value(std::move(payload))}});
  }
  return jcs::canonicalize(Value(Value::Object{{"delivery_id", delivery},
                                               {"topic", content.topic},
                                               {"stock", Value(std::move(stock))},
                                               {"orders", Value(std::move(orders))}}));
}

}  // namespace pgves::core
