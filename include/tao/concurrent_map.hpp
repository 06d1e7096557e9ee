// A sharded concurrent hash map (the server's connection registry uses it).
// Thread safety: every member is safe from any thread. Callbacks given to for_each run without
// any lock held, on a snapshot of each shard, so they may use the map themselves.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tao {

/// A hash map split into `Shards` independently locked shards (Go Tao's ConcurrentMap/ConnMap).
/// Values are copied out, never referenced, so no lock is held while the caller uses them.
/// Thread safety: every member is safe from any thread.
template <class K, class V, class Hash = std::hash<K>, std::size_t Shards = 32>
class ConcurrentMap {
  static_assert(Shards > 0 && (Shards & (Shards - 1)) == 0, "Shards must be a power of two");

public:
  /// The value under `key`, if any (a copy).
  std::optional<V> get(const K& key) const {
    const Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) return std::nullopt;
    return it->second;
  }
  /// True if `key` is present.
  bool contains(const K& key) const {
    const Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    return s.map.contains(key);
  }
  /// Inserts or replaces. Returns true if the key was new.
  bool insert(const K& key, V value) {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    auto [it, inserted] = s.map.insert_or_assign(key, std::move(value));
    if (inserted) size_.fetch_add(1, std::memory_order_relaxed);
    return inserted;
  }
  /// Inserts only if absent. Returns true if inserted.
  bool insert_if_absent(const K& key, V value) {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    auto [it, inserted] = s.map.try_emplace(key, std::move(value));
    if (inserted) size_.fetch_add(1, std::memory_order_relaxed);
    return inserted;
  }
  /// Removes `key`. Returns true if it was there.
  bool erase(const K& key) {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    if (s.map.erase(key) == 0) return false;
    size_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  /// Removes and returns the value under `key`.
  std::optional<V> take(const K& key) {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) return std::nullopt;
    std::optional<V> v(std::move(it->second));
    s.map.erase(it);
    size_.fetch_sub(1, std::memory_order_relaxed);
    return v;
  }
  /// Calls fn(key, value) for every entry, shard by shard, on a copy taken under the shard's lock;
  /// entries added or removed meanwhile may or may not be seen.
  template <class F> void for_each(F&& fn) const {
    std::vector<std::pair<K, V>> snapshot;
    for (const Shard& s : shards_) {
      snapshot.clear();
      {
        std::lock_guard lock(s.mutex);
        snapshot.assign(s.map.begin(), s.map.end());
      }
      for (auto& [k, v] : snapshot)
        fn(k, v);
    }
  }
  /// Entries (a snapshot: may be stale by the time it is read).
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  /// True when size() is 0.
  bool empty() const noexcept { return size() == 0; }
  /// Removes every entry, shard by shard.
  void clear() {
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mutex);
      size_.fetch_sub(s.map.size(), std::memory_order_relaxed);
      s.map.clear();
    }
  }

private:
  struct alignas(64) Shard {
    // A plain mutex: uncontended it is cheaper than a reader-writer lock, and with 32 shards
    // contention is rare (the map benchmark measures both).
    mutable std::mutex mutex;
    std::unordered_map<K, V, Hash> map;
  };
  static std::size_t mix(std::size_t h) noexcept {
    // Spread sequential keys (such as ids) over the shards.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
  }
  Shard& shard(const K& key) { return shards_[mix(Hash{}(key)) & (Shards - 1)]; }
  const Shard& shard(const K& key) const { return shards_[mix(Hash{}(key)) & (Shards - 1)]; }

  std::array<Shard, Shards> shards_;
  std::atomic<std::size_t> size_{0};
};

} // namespace tao
