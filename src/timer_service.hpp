// The timers of one loop: a binary min-heap of (deadline, sequence) with each node's heap position
// recorded, so add and cancel are O(log n), driven by one Asio steady_timer set to the earliest
// deadline.
//
// Why a heap and not a hierarchical timing wheel: a wheel's O(1) add/cancel pays off with millions
// of timers at coarse resolution; at 1 ms resolution it needs a tick per millisecond (or cascading)
// even when idle, and its precision is one tick. The heap costs ~log2(100,000) = 17 comparisons
// per operation, fires at the exact deadline, wakes the loop only when something is due, and keeps
// equal deadlines in scheduling order for free. The benchmark (bench/timer_bench.cpp) measures
// schedule + cancel against one asio::steady_timer per timer.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/detail/unique_function.hpp>
#include <tao/timer.hpp>

namespace tao::detail {

class TimerService {
public:
  using Callback = UniqueFunction<void(TimePoint due)>;

  explicit TimerService(boost::asio::io_context& ctx);
  ~TimerService();

  /// Schedules cb at `due`, then every `interval` if it is not zero. Any thread.
  TimerId add(TimePoint due, Duration interval, Callback cb);
  /// Any thread; see TimerQueue::cancel.
  bool cancel(TimerId id);
  /// True while the timer is pending (or periodic and not cancelled).
  bool pending(TimerId id) const;
  std::size_t size() const noexcept { return active_.load(std::memory_order_relaxed); }
  /// Drops every timer (their callbacks are destroyed, not called). On the loop, at shutdown.
  void clear();

private:
  // pending: in the heap; due: taken out to run in this batch; running: its callback runs now.
  enum class State : std::uint8_t { free, pending, due, running, cancelled };
  struct Node {
    TimePoint due{};
    TimePoint start{};
    Duration interval{};
    std::uint64_t seq = 0;
    std::uint64_t k = 0; // periodic: index of the next firing
    Callback cb;
    std::uint32_t gen = 0;
    std::uint32_t heap_pos = 0;
    State state = State::free;
  };
  struct Fired {
    std::uint32_t index;
    TimePoint due;
    Callback cb;
  };

  bool before(std::uint32_t a, std::uint32_t b) const noexcept {
    const Node& x = nodes_[a];
    const Node& y = nodes_[b];
    return x.due < y.due || (x.due == y.due && x.seq < y.seq);
  }
  void heap_push(std::uint32_t index);
  void heap_remove(std::uint32_t pos);
  void sift_up(std::uint32_t pos);
  void sift_down(std::uint32_t pos);
  void place(std::uint32_t pos, std::uint32_t index) {
    heap_[pos] = index;
    nodes_[index].heap_pos = pos;
  }
  Node* find(TimerId id);
  const Node* find(TimerId id) const;
  void release(std::uint32_t index);
  /// Points the Asio timer at the earliest deadline. Loop thread, mutex_ held.
  void rearm();
  void on_timer();

  boost::asio::io_context& ctx_;
  boost::asio::steady_timer timer_; // loop thread only
  mutable std::mutex mutex_;
  std::vector<Node> nodes_;            // guarded by mutex_; index = id's low 32 bits - 1
  std::vector<std::uint32_t> free_;    // guarded by mutex_
  std::vector<std::uint32_t> heap_;    // guarded by mutex_
  std::uint64_t next_seq_ = 0;         // guarded by mutex_
  TimePoint armed_ = TimePoint::max(); // guarded by mutex_: what timer_ waits for
  bool rearm_posted_ = false;          // guarded by mutex_
  std::atomic<std::size_t> active_{0};
  std::vector<Fired> fired_; // loop thread only: reused batch
};

} // namespace tao::detail
