// Connection-registry workload: 90% lookups, 5% inserts, 5% erases over 10,000 keys.
// tao::ConcurrentMap against std::mutex + std::unordered_map, with one and two threads.
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>

#include <benchmark/benchmark.h>

#include <tao/concurrent_map.hpp>

namespace {

constexpr std::uint64_t kKeys = 10000;

struct LockedMap {
  std::mutex m;
  std::unordered_map<std::uint64_t, std::shared_ptr<int>> map;
  std::optional<std::shared_ptr<int>> get(std::uint64_t k) {
    std::lock_guard l(m);
    auto it = map.find(k);
    if (it == map.end()) return std::nullopt;
    return it->second;
  }
  void insert(std::uint64_t k, std::shared_ptr<int> v) {
    std::lock_guard l(m);
    map.insert_or_assign(k, std::move(v));
  }
  void erase(std::uint64_t k) {
    std::lock_guard l(m);
    map.erase(k);
  }
};

template <class Map> void workload(benchmark::State& state, Map& map) {
  std::mt19937_64 rng(state.thread_index() + 1);
  auto value = std::make_shared<int>(1);
  for (auto _ : state) {
    const std::uint64_t k = rng() % kKeys;
    const auto op = rng() % 100;
    if (op < 90) {
      benchmark::DoNotOptimize(map.get(k));
    } else if (op < 95) {
      map.insert(k, value);
    } else {
      map.erase(k);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

tao::ConcurrentMap<std::uint64_t, std::shared_ptr<int>> g_tao;
LockedMap g_locked;

void BM_TaoConcurrentMap(benchmark::State& state) {
  if (state.thread_index() == 0)
    for (std::uint64_t k = 0; k < kKeys; k += 2)
      g_tao.insert(k, std::make_shared<int>(1));
  workload(state, g_tao);
}

void BM_MutexUnorderedMap(benchmark::State& state) {
  if (state.thread_index() == 0)
    for (std::uint64_t k = 0; k < kKeys; k += 2)
      g_locked.insert(k, std::make_shared<int>(1));
  workload(state, g_locked);
}

BENCHMARK(BM_TaoConcurrentMap)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_MutexUnorderedMap)->Threads(1)->Threads(2)->UseRealTime();

} // namespace
