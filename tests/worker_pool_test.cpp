#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <tao/worker_pool.hpp>

#include "support.hpp"

namespace {

TEST(WorkerPool, SameKeyRunsInSubmissionOrderAndNeverConcurrently) {
  tao::WorkerPool pool({.threads = 4});
  constexpr int keys = 16, per_key = 2000;
  std::vector<std::vector<int>> seen(keys);
  std::vector<std::atomic<int>> running(keys);
  std::atomic<bool> overlap{false};
  // Submitted from two threads at once, each owning half of the keys.
  auto producer = [&](int first) {
    for (int i = 0; i < per_key; ++i)
      for (int k = first; k < keys; k += 2)
        ASSERT_FALSE(pool.submit(k, [&, k, i] {
          if (running[k].fetch_add(1) != 0) overlap = true;
          seen[k].push_back(i);
          running[k].fetch_sub(1);
        }));
  };
  std::thread a(producer, 0), b(producer, 1);
  a.join();
  b.join();
  pool.stop();
  EXPECT_FALSE(overlap);
  for (int k = 0; k < keys; ++k) {
    ASSERT_EQ(seen[k].size(), static_cast<std::size_t>(per_key));
    for (int i = 0; i < per_key; ++i)
      ASSERT_EQ(seen[k][i], i);
  }
}

TEST(WorkerPool, ConsecutiveKeysSpreadOverEveryWorkerForAnyCount) {
  for (std::size_t n : {1u, 3u, 5u, 8u, 20u}) {
    tao::WorkerPool pool({.threads = n});
    std::mutex m;
    std::map<std::thread::id, int> per_thread;
    for (std::uint64_t key = 1; key <= n * 10; ++key)
      pool.submit(key, [&] {
        std::lock_guard l(m);
        ++per_thread[std::this_thread::get_id()];
      });
    pool.stop();
    EXPECT_EQ(per_thread.size(), n) << n << " workers"; // Go Tao used 8 of 20
    for (auto& [id, count] : per_thread)
      EXPECT_EQ(count, 10);
  }
}

TEST(WorkerPool, BoundedQueueRefusesInsteadOfDropping) {
  tao::WorkerPool pool({.threads = 1, .queue_capacity = 4});
  std::promise<void> gate;
  auto open = gate.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_FALSE(pool.submit(0, [open, &ran] {
    open.wait();
    ++ran;
  }));
  ASSERT_TRUE(test::eventually([&] { return pool.queued() == 0; })); // the first one is running
  int accepted = 0, refused = 0;
  for (int i = 0; i < 10; ++i) {
    auto ec = pool.submit(0, [&ran] { ++ran; });
    if (ec) {
      EXPECT_EQ(ec, tao::errc::send_queue_full);
      ++refused;
    } else {
      ++accepted;
    }
  }
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(refused, 6);
  gate.set_value();
  pool.stop();
  EXPECT_EQ(ran, 1 + accepted); // everything accepted ran
}

TEST(WorkerPool, StopRunsWhatWasQueuedAndRefusesLaterWork) {
  tao::WorkerPool pool({.threads = 2});
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i)
    pool.submit(i, [&] { ++ran; });
  pool.stop();
  EXPECT_EQ(ran, 1000);
  EXPECT_EQ(pool.submit(1, [] {}), tao::errc::stopped);
}

TEST(WorkerPool, ATaskThatThrowsDoesNotKillItsWorker) {
  tao::WorkerPool pool({.threads = 1});
  std::atomic<int> ran{0};
  pool.submit(0, [] { throw std::runtime_error("boom"); });
  pool.submit(0, [&] { ++ran; });
  pool.stop();
  EXPECT_EQ(ran, 1);
}

} // namespace
