// What pg_ves makes of a verified platform message (core/platforms/inbound).
#include <gtest/gtest.h>

#include "core/json/json.hpp"
#include "core/platforms/inbound.hpp"

using namespace pgves::core;

TEST(Inbound, OrderStatusesMapToTheOrderVocabulary) {
  EXPECT_EQ(order_event_for_status("created"), "order.created");
  EXPECT_EQ(order_event_for_status("awaiting_shipment"), "order.created");
  EXPECT_EQ(order_event_for_status("paid"), "payment.captured");
  EXPECT_EQ(order_event_for_status("cancelled"), "order.cancelled");
  EXPECT_EQ(order_event_for_status("canceled"), "order.cancelled");
  EXPECT_EQ(order_event_for_status("fulfilled"), "order.shipped");
  EXPECT_EQ(order_event_for_status("in_transit"), "order.shipped");
  EXPECT_EQ(order_event_for_status("completed"), "order.delivered");
  EXPECT_EQ(order_event_for_status("refunded"), "payment.refunded");
  EXPECT_EQ(order_event_for_status("something_else"), "");
  EXPECT_EQ(order_event_for_status("CANCELLED"), "");  // adapters lowercase first
}

TEST(Inbound, TrackingNumberIsFoundWhereverThePlatformNestsIt) {
  EXPECT_EQ(
      find_tracking_number(json::parse(
          R"({"id": 1, "fulfillments": [{"tracking_number": null}, {"tracking_number": "1Z9"}]})")),
      "1Z9");
  EXPECT_EQ(find_tracking_number(
                json::parse(R"({"tracking_number": "TT1", "x": {"tracking_number": "no"}})")),
            "TT1");
  EXPECT_FALSE(find_tracking_number(json::parse(R"({"tracking_number": ""})")));
  EXPECT_FALSE(find_tracking_number(json::parse(R"([1, 2, {"a": "b"}])")));
}

TEST(Inbound, ContentBecomesOneJsonDocument) {
  InboundContent c;
  c.delivery_id = "d-1";
  c.topic = "inventory_levels/update";
  c.stock.push_back(
      StockReport{"gid://shopify/InventoryItem/1@gid://shopify/Location/2", 7, 1700000000123});
  c.orders.push_back(
      OrderNotice{"o-1", "fulfilled", R"({"fulfillments": [{"tracking_number": "Z1"}]})"});
  c.orders.push_back(OrderNotice{"o-2", "weird", "not json"});
  const json::Value v = json::parse(inbound_content_json(c, "shopify", "{}"));
  EXPECT_EQ(v.find("delivery_id")->as_string(), "d-1");
  const auto &stock = v.find("stock")->as_array();
  ASSERT_EQ(stock.size(), 1u);
  EXPECT_EQ(stock[0].find("quantity")->as_number(), 7);
  EXPECT_EQ(stock[0].find("observed_at_ms")->as_number(), 1700000000123.0);
  const auto &orders = v.find("orders")->as_array();
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].find("event_type")->as_string(), "order.shipped");
  EXPECT_EQ(orders[0].find("payload")->find("tracking_number")->as_string(), "Z1");
  EXPECT_EQ(orders[0].find("payload")->find("platform")->as_string(), "shopify");
  EXPECT_TRUE(orders[1].find("event_type")->is_null());
  EXPECT_EQ(orders[1].find("payload")->find("order")->as_string(), "not json");
}

TEST(Inbound, WithoutDeliveryIdTheBodyHashIdentifiesTheMessage) {
  InboundContent c;
  const json::Value a = json::parse(inbound_content_json(c, "meta_catalog", "abc"));
  const json::Value b = json::parse(inbound_content_json(c, "meta_catalog", "abd"));
  EXPECT_EQ(a.find("delivery_id")->as_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(a.find("delivery_id")->as_string(), b.find("delivery_id")->as_string());
}
