// The destination kinds pg_ves knows: the one list that SQL (the CHECK on
// ves.destinations.kind, ves.destination_kinds()) and the deliverer read.
#include <array>

#include "core/platforms/adapter.hpp"
#include "core/platforms/amazon_sp.hpp"
#include "core/platforms/http.hpp"
#include "core/platforms/meta_catalog.hpp"
#include "core/platforms/shopify.hpp"
#include "core/platforms/tiktok_shop.hpp"
#include "core/platforms/ves_postgres.hpp"
#include "core/platforms/ves_sequencer.hpp"
#include "core/platforms/webhook.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

const WebhookAdapter webhook_adapter{};
const HttpAdapter http_adapter{};
const VesSequencerAdapter ves_sequencer_adapter{};
const ShopifyAdapter shopify_adapter{};
const TikTokAdapter tiktok_shop_adapter{};
const AmazonAdapter amazon_sp_adapter{};
const MetaAdapter meta_catalog_adapter{};
const VesPostgresAdapter ves_postgres_adapter{};

// In the order lists and hints show them. Kinds are only ever added: rows of
// ves.destinations name them.
const std::array<const Adapter *, 8> registered = {
    &webhook_adapter,     &http_adapter,      &ves_sequencer_adapter, &shopify_adapter,
    &tiktok_shop_adapter, &amazon_sp_adapter, &meta_catalog_adapter,  &ves_postgres_adapter};

}  // namespace

const Adapter *find_adapter(std::string_view kind) {
  for (const Adapter *a : registered)
    if (a->kind() == kind) return a;
  return nullptr;
}

std::vector<std::string_view> adapter_kinds() {
  std::vector<std::string_view> out;
  for (const Adapter *a : registered) out.push_back(a->kind());
  return out;
}

}  // namespace pgves::core
