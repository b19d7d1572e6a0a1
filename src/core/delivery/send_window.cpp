#include "core/delivery/send_window.hpp"

#include <algorithm>
#include <cstdint>
#include <numeric>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

std::vector<int> fair_shares(const std::vector<int> &demands, int capacity) {
  std::vector<int> share(demands.size(), 0);
  std::vector<size_t> open;  // indexes still wanting more
  for (size_t i = 0; i < demands.size(); ++i)
    if (demands[i] > 0) open.push_back(i);
  std::int64_t left = std::max(0, capacity);
  // Water-filling: each round raises every open share by an equal step, as
  // far as the smallest remaining demand allows; leftovers smaller than
  // one row each go to the first destinations in order.
  while (left > 0 && !open.empty()) {
    std::int64_t n = static_cast<std::int64_t>(open.size());
    std::int64_t step = left / n;
    if (step == 0) {
      for (size_t k = 0; k < open.size() && left > 0; ++k, --left) ++share[open[k]];
      break;
    }
    std::int64_t smallest = step;
    for (size_t i : open) smallest = std::min<std::int64_t>(smallest, demands[i] - share[i]);
    for (size_t i : open) share[i] += static_cast<int>(smallest);
    left -= smallest * n;
    open.erase(
        std::remove_if(open.begin(), open.end(), [&](size_t i) { return share[i] >= demands[i]; }),
        open.end());
  }
  return share;
}

std::vector<int> claim_quotas(const std::vector<DestinationLoad> &loads, int window,
                              int claim_batch) {
  std::vector<int> wants(loads.size(), 0);
  std::int64_t room = std::max(0, window);
  for (size_t i = 0; i < loads.size(); ++i) {
    const DestinationLoad &l = loads[i];
    if (l.ready && l.has_work)
      wants[i] = 2 * std::max(1, l.concurrency) * std::max(1, l.rows_per_request);
    else
      room -= std::max(0, l.held);  // keeps what it holds, gets nothing new
  }
  std::vector<int> allowed = fair_shares(wants, static_cast<int>(std::max<std::int64_t>(0, room)));
  std::vector<int> missing(loads.size(), 0);
  for (size_t i = 0; i < loads.size(); ++i)
    missing[i] = std::max(0, allowed[i] - std::max(0, loads[i].held));
  return fair_shares(missing, std::max(0, claim_batch));
}

bool claim_worthwhile(const std::vector<DestinationLoad> &loads, const std::vector<int> &quotas) {
  std::int64_t asked = 0, capacity = 0;
  for (size_t i = 0; i < loads.size() && i < quotas.size(); ++i) {
    if (quotas[i] <= 0) continue;
    if (loads[i].held <= 0) return true;  // it would sit idle until the next claim
    asked += quotas[i];
    capacity += quotas[i] + loads[i].held;
  }
  return asked > 0 && 4 * asked >= capacity;
}

}  // namespace pgves::core
