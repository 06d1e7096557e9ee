#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <tao/concurrent_map.hpp>

namespace {

TEST(ConcurrentMap, BasicOperations) {
  tao::ConcurrentMap<int, std::string> m;
  EXPECT_TRUE(m.insert(1, "a"));
  EXPECT_FALSE(m.insert(1, "b")); // replaced
  EXPECT_EQ(m.get(1), "b");
  EXPECT_FALSE(m.insert_if_absent(1, "c"));
  EXPECT_EQ(m.get(1), "b");
  EXPECT_TRUE(m.insert_if_absent(2, "c"));
  EXPECT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.contains(2));
  EXPECT_EQ(m.take(2), "c");
  EXPECT_FALSE(m.erase(2));
  EXPECT_TRUE(m.erase(1));
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.get(1));
}

TEST(ConcurrentMap, ForEachMayUseTheMapItself) {
  tao::ConcurrentMap<int, int> m;
  for (int i = 0; i < 100; ++i)
    m.insert(i, i);
  int seen = 0;
  m.for_each([&](int k, int) {
    m.erase(k); // no deadlock: callbacks run without the shard lock
    ++seen;
  });
  EXPECT_EQ(seen, 100);
  EXPECT_TRUE(m.empty());
}

TEST(ConcurrentMap, ConcurrentWritersAndReaders) {
  tao::ConcurrentMap<std::uint64_t, std::uint64_t> m;
  constexpr int threads = 4, per_thread = 20000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0};
  std::thread reader([&] {
    while (!done) {
      m.for_each([&](std::uint64_t k, std::uint64_t v) { EXPECT_EQ(k * 3, v); });
      for (std::uint64_t k = 0; k < 100; ++k)
        if (auto v = m.get(k)) {
          EXPECT_EQ(*v, k * 3);
        }
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t)
    writers.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        std::uint64_t k = static_cast<std::uint64_t>(t) * per_thread + i;
        EXPECT_TRUE(m.insert_if_absent(k, k * 3));
        if (i % 2 == 0) {
          EXPECT_TRUE(m.erase(k));
        }
      }
    });
  for (auto& w : writers)
    w.join();
  done = true;
  reader.join();
  EXPECT_EQ(m.size(), static_cast<std::size_t>(threads * per_thread / 2));
  EXPECT_GT(reads.load(), 0u);
}

} // namespace
