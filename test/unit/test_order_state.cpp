#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/json/json.hpp"
#include "core/state/order_state.hpp"

namespace json = pgves::core::json;
namespace order = pgves::core::order;

using order::State;
using order::Verdict;

namespace {

const json::Value kShipPayload = json::parse(R"({"tracking_number":"1Z999AA10123456784"})");
const json::Value kEmpty = json::parse("{}");

State S(const char *status, const char *payment = "none", const char *ret = "none") {
  State s;
  s.status = status;
  s.payment = payment;
  s.ret = ret;
  return s;
}

std::string str(const State &s) { return s.status + "/" + s.payment + "/" + s.ret; }

const json::Value &payload_for(std::string_view event_type) {
  return event_type == "order.shipped" ? kShipPayload : kEmpty;
}

struct Expect {
  State from;
  const char *event;
  Verdict verdict;
  State next;  // compared only when verdict is apply
};

void check(const Expect &e) {
  SCOPED_TRACE(str(e.from) + " + " + e.event);
  const order::Transition t = order::transition(e.from, e.event, payload_for(e.event));
  EXPECT_EQ(order::name(t.verdict), std::string(order::name(e.verdict)));
  if (e.verdict == Verdict::apply) {
    EXPECT_EQ(str(t.next), str(e.next));
    EXPECT_TRUE(t.reason.empty()) << t.reason;
  } else {
    EXPECT_FALSE(t.reason.empty());
  }
  EXPECT_FALSE(t.bad_payload);
}

const std::vector<std::string> kStatuses = {"none", "created", "shipped", "delivered", "cancelled"};
const std::vector<std::string> kPayments = {"none",   "authorized",         "captured",
                                            "failed", "partially_refunded", "refunded"};
const std::vector<std::string> kReturns = {"none",     "requested", "approved",
                                           "rejected", "received",  "refunded"};

}  // namespace

TEST(OrderState, Names) {
  EXPECT_STREQ(order::name(Verdict::apply), "apply");
  EXPECT_STREQ(order::name(Verdict::hold), "hold");
  EXPECT_STREQ(order::name(Verdict::reject), "reject");
  const State s;
  EXPECT_EQ(str(s), "none/none/none");
}

TEST(OrderState, KnownEventTypes) {
  for (const char *t :
       {"order.created", "order.updated", "order.shipped", "order.delivered", "order.cancelled",
        "payment.authorized", "payment.captured", "payment.failed", "payment.partially_refunded",
        "payment.refunded", "return.requested", "return.approved", "return.rejected",
        "return.received", "return.refunded"})
    EXPECT_TRUE(order::known_event_type(t)) << t;
  for (const char *t : {"", "order", "order.", "order.Created", "order.returned", "payment.voided",
                        "return.cancelled", "shipment.created", "ORDER.CREATED", " order.created",
                        "order.created ", "payment.refund"})
    EXPECT_FALSE(order::known_event_type(t)) << '"' << t << '"';
}

TEST(OrderState, UnknownEventTypesAreRejected) {
  for (const State &s : {S("none"), S("created"), S("delivered", "captured", "requested")}) {
    for (const char *t :
         {"", "order.returned", "payment.voided", "return.cancelled", "shipment.created"}) {
      const order::Transition tr = order::transition(s, t, kEmpty);
      EXPECT_EQ(tr.verdict, Verdict::reject) << str(s) << " + " << t;
      EXPECT_FALSE(tr.bad_payload) << t;
      EXPECT_FALSE(tr.reason.empty()) << t;
    }
  }
}

TEST(OrderState, TheHappyPath) {
  State s;
  for (const char *e :
       {"order.created", "payment.authorized", "payment.captured", "order.updated", "order.shipped",
        "order.delivered", "return.requested", "return.approved", "return.received",
        "payment.partially_refunded", "return.refunded", "payment.refunded"}) {
    const order::Transition t = order::transition(s, e, payload_for(e));
    ASSERT_EQ(t.verdict, Verdict::apply) << e << ": " << t.reason;
    s = t.next;
  }
  EXPECT_EQ(str(s), "delivered/refunded/refunded");
}

TEST(OrderState, OrderTrack) {
  const std::vector<Expect> table = {
      {S("none"), "order.created", Verdict::apply, S("created")},
      {S("created"), "order.created", Verdict::reject, {}},
      {S("shipped"), "order.created", Verdict::reject, {}},
      {S("delivered"), "order.created", Verdict::reject, {}},
      {S("cancelled"), "order.created", Verdict::reject, {}},

      {S("none"), "order.updated", Verdict::hold, {}},
      {S("created", "authorized"), "order.updated", Verdict::apply, S("created", "authorized")},
      {S("shipped"), "order.updated", Verdict::apply, S("shipped")},
      {S("delivered", "captured", "requested"), "order.updated", Verdict::apply,
       S("delivered", "captured", "requested")},
      {S("cancelled"), "order.updated", Verdict::reject, {}},

      {S("none"), "order.shipped", Verdict::hold, {}},
      {S("created", "captured"), "order.shipped", Verdict::apply, S("shipped", "captured")},
      {S("shipped"), "order.shipped", Verdict::reject, {}},
      {S("delivered"), "order.shipped", Verdict::reject, {}},
      {S("cancelled"), "order.shipped", Verdict::reject, {}},  // nothing ships after a cancel

      {S("none"), "order.delivered", Verdict::hold, {}},
      {S("created"), "order.delivered", Verdict::hold, {}},  // not shipped yet: may be early
      {S("shipped", "captured"), "order.delivered", Verdict::apply, S("delivered", "captured")},
      {S("delivered"), "order.delivered", Verdict::reject, {}},
      {S("cancelled"), "order.delivered", Verdict::reject, {}},

      {S("none"), "order.cancelled", Verdict::hold, {}},
      {S("created", "authorized"), "order.cancelled", Verdict::apply, S("cancelled", "authorized")},
      {S("shipped"), "order.cancelled", Verdict::reject, {}},  // returned, not cancelled
      {S("delivered"), "order.cancelled", Verdict::reject, {}},
      {S("cancelled"), "order.cancelled", Verdict::reject, {}},
  };
  for (const Expect &e : table) check(e);
}

TEST(OrderState, ShippedNeedsATrackingNumber) {
  for (const char *payload : {"{}", R"({"tracking_number":""})", R"({"tracking_number":null})",
                              R"({"tracking_number":12345})", R"({"tracking_number":["1Z"]})",
                              R"({"tracking":"1Z"})", "null", R"("1Z")"}) {
    for (const char *status :
         {"none", "created", "cancelled", "shipped"}) {  // never held: it can never become valid
      const order::Transition t =
          order::transition(S(status), "order.shipped", json::parse(payload));
      EXPECT_EQ(t.verdict, Verdict::reject) << status << " " << payload;
      EXPECT_TRUE(t.bad_payload) << status << " " << payload;
      EXPECT_FALSE(t.reason.empty());
    }
  }
  // The state-based rejections are not about the payload.
  const order::Transition t = order::transition(S("cancelled"), "order.shipped", kShipPayload);
  EXPECT_EQ(t.verdict, Verdict::reject);
  EXPECT_FALSE(t.bad_payload);
  // Other events do not look at the payload.
  EXPECT_EQ(order::transition(S("shipped"), "order.delivered", json::parse("null")).verdict,
            Verdict::apply);
}

TEST(OrderState, PaymentTrack) {
  struct Row {
    const char *event;
    std::vector<std::string> apply, hold;  // from these payment states; every other one rejects
    const char *next;
  };
  const std::vector<Row> rows = {
      {"payment.authorized", {"none", "failed"}, {}, "authorized"},
      {"payment.captured", {"none", "authorized"}, {}, "captured"},
      {"payment.failed", {"none", "authorized"}, {}, "failed"},
      {"payment.partially_refunded",
       {"captured", "partially_refunded"},
       {"none", "authorized"},
       "partially_refunded"},
      {"payment.refunded", {"captured", "partially_refunded"}, {"none", "authorized"}, "refunded"},
  };
  for (const Row &r : rows) {
    // Payments follow the money whatever the order's status, once it exists.
    for (const char *status : {"created", "shipped", "delivered", "cancelled"}) {
      for (const std::string &p : kPayments) {
        const bool applies = std::find(r.apply.begin(), r.apply.end(), p) != r.apply.end();
        const bool holds = std::find(r.hold.begin(), r.hold.end(), p) != r.hold.end();
        State from = S(status, p.c_str(), "none");
        if (applies)
          check({from, r.event, Verdict::apply, S(status, r.next, "none")});
        else
          check({from, r.event, holds ? Verdict::hold : Verdict::reject, {}});
      }
    }
  }
}

TEST(OrderState, PaymentEventsOnAnUnknownOrderAreHeld) {
  for (const char *e : {"payment.authorized", "payment.captured", "payment.failed",
                        "payment.partially_refunded", "payment.refunded"})
    for (const std::string &p : kPayments) check({S("none", p.c_str()), e, Verdict::hold, {}});
}

TEST(OrderState, RefundBeforeCaptureIsHeld) {
  check({S("created", "authorized"), "payment.refunded", Verdict::hold, {}});
  check({S("created"), "payment.refunded", Verdict::hold, {}});
  check({S("created", "failed"), "payment.refunded", Verdict::reject, {}});
  check({S("created", "refunded"), "payment.refunded", Verdict::reject, {}});
}

TEST(OrderState, ReturnTrack) {
  struct Row {
    const char *event;
    const char *apply_from;
    std::vector<std::string> hold;
    const char *next;
  };
  const std::vector<Row> rows = {
      {"return.requested", "none", {}, "requested"},
      {"return.approved", "requested", {"none"}, "approved"},
      {"return.rejected", "requested", {"none"}, "rejected"},
      {"return.received", "approved", {"none", "requested"}, "received"},
      {"return.refunded", "received", {"none", "requested", "approved"}, "refunded"},
  };
  for (const Row &r : rows) {
    for (const std::string &ret : kReturns) {
      const State from = S("delivered", "captured", ret.c_str());
      if (ret == r.apply_from)
        check({from, r.event, Verdict::apply, S("delivered", "captured", r.next)});
      else
        check({from,
               r.event,
               std::find(r.hold.begin(), r.hold.end(), ret) != r.hold.end() ? Verdict::hold
                                                                            : Verdict::reject,
               {}});
    }
  }
}

TEST(OrderState, ReturnRequestedBeforeDeliveryIsHeld) {
  check({S("created", "captured"), "return.requested", Verdict::hold, {}});
  check({S("shipped", "captured"), "return.requested", Verdict::hold, {}});
  check({S("none"), "return.requested", Verdict::hold, {}});
  check({S("delivered", "captured"), "return.requested", Verdict::apply,
         S("delivered", "captured", "requested")});
}

TEST(OrderState, ReturnEventsOnAnUnknownOrderAreHeldAndAfterACancelRejected) {
  for (const char *e : {"return.requested", "return.approved", "return.rejected", "return.received",
                        "return.refunded"}) {
    for (const std::string &ret : kReturns) {
      check({S("none", "none", ret.c_str()), e, Verdict::hold, {}});
      check({S("cancelled", "refunded", ret.c_str()), e, Verdict::reject, {}});
    }
  }
}

TEST(OrderState, NextIsOnlyMeaningfulOnApply) {
  const order::Transition held =
      order::transition(S("created", "captured"), "order.delivered", kEmpty);
  EXPECT_EQ(held.verdict, Verdict::hold);
  EXPECT_EQ(str(held.next), "none/none/none");
  const order::Transition rejected =
      order::transition(S("cancelled", "captured"), "order.updated", kEmpty);
  EXPECT_EQ(rejected.verdict, Verdict::reject);
  EXPECT_EQ(str(rejected.next), "none/none/none");
}

TEST(OrderState, EveryStateAndEventHasAVerdict) {
  // Exhaustive sweep: nothing throws, only "apply" carries a next state, and
  // an applied event changes at most its own track.
  const std::vector<std::string> events = {
      "order.created",    "order.updated",    "order.shipped",
      "order.delivered",  "order.cancelled",  "payment.authorized",
      "payment.captured", "payment.failed",   "payment.partially_refunded",
      "payment.refunded", "return.requested", "return.approved",
      "return.rejected",  "return.received",  "return.refunded"};
  int applied = 0;
  for (const auto &st : kStatuses)
    for (const auto &p : kPayments)
      for (const auto &r : kReturns)
        for (const auto &e : events) {
          const State from = S(st.c_str(), p.c_str(), r.c_str());
          const order::Transition t = order::transition(from, e, payload_for(e));
          if (t.verdict != Verdict::apply) continue;
          ++applied;
          const std::string track = e.substr(0, e.find('.'));
          if (track != "order") {
            EXPECT_EQ(t.next.status, st) << str(from) << " + " << e;
          }
          if (track != "payment") {
            EXPECT_EQ(t.next.payment, p) << str(from) << " + " << e;
          }
          if (track != "return") {
            EXPECT_EQ(t.next.ret, r) << str(from) << " + " << e;
          }
        }
  EXPECT_GT(applied, 0);
}
