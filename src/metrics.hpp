// Counters of one thread (an event loop or a worker): relaxed atomics written by that thread
// only, with a plain load + store (no locked read-modify-write), read by anyone taking a
// snapshot. One cache-line-aligned block per thread, so threads never share a counter's line.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include <tao/metrics.hpp>

#include "lap_clock.hpp"

namespace tao::detail {

using Counter = std::atomic<std::uint64_t>;

/// Adds n to a counter that only the calling thread writes.
inline void bump(Counter& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Like bump(), but publishes what the thread did before it: a reader that sees the new value (and
/// reads with acquire, as add_to() does) sees those earlier writes too.
inline void bump_release(Counter& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

/// handler_seconds_bounds in whole nanoseconds (every bound is one), for integer compares.
inline constexpr auto handler_bounds_ns = [] {
  std::array<std::uint64_t, handler_seconds_bounds.size()> ns{};
  for (std::size_t i = 0; i < ns.size(); ++i)
    ns[i] = static_cast<std::uint64_t>(handler_seconds_bounds[i] * 1e9 + 0.5);
  return ns;
}();

struct alignas(64) ThreadCounters {
  Counter connections_accepted{0};
  Counter connections_closed{0};
  Counter frames_in{0};
  Counter frames_out{0};
  Counter bytes_in{0};
  Counter bytes_out{0};
  Counter protocol_errors{0};
  Counter heartbeat_timeouts{0};
  // Handler run time, in nanoseconds.
  std::array<Counter, handler_seconds_bounds.size() + 1> handler_buckets{};
  Counter handler_ns{0};
  Counter handler_count{0};

  void observe_handler_ns(std::uint64_t ns) noexcept {
    std::size_t i = 0;
    while (i < handler_bounds_ns.size() && ns > handler_bounds_ns[i])
      ++i;
    bump(handler_buckets[i]);
    bump(handler_ns, ns);
    bump(handler_count);
  }

  /// Adds this thread's counters into m (gauges are not kept here).
  void add_to(MetricsSnapshot& m) const noexcept {
    auto get = [](const Counter& c) { return c.load(std::memory_order_acquire); };
    m.connections_accepted += get(connections_accepted);
    m.connections_closed += get(connections_closed);
    m.frames_in += get(frames_in);
    m.frames_out += get(frames_out);
    m.bytes_in += get(bytes_in);
    m.bytes_out += get(bytes_out);
    m.protocol_errors += get(protocol_errors);
    m.heartbeat_timeouts += get(heartbeat_timeouts);
    for (std::size_t i = 0; i < handler_buckets.size(); ++i)
      m.handler_seconds.counts[i] += get(handler_buckets[i]);
    m.handler_seconds.sum_seconds += static_cast<double>(get(handler_ns)) / 1e9;
    m.handler_seconds.count += get(handler_count);
  }
};

/// Times consecutive handler calls on one thread with one clock read each: a lap ends where the
/// previous one ended (or where the timer was started), so a batch of messages read at once costs
/// one clock read per message, plus one for the batch, instead of two per message. A lap
/// therefore includes the decoding of its message. After work that is not a timed handler, skip()
/// makes the next lap start afresh. The clock is LapClock (the TSC where it can be).
class HandlerLaps {
public:
  HandlerLaps(ThreadCounters& counters, bool on) noexcept : counters_(on ? &counters : nullptr) {}
  /// Call right before the handler's work starts (decoding included); reads the clock only when
  /// no lap ended just before.
  void begin() noexcept {
    if (counters_ && !running_) {
      tsc_ = LapClock::tsc();
      last_ = LapClock::now(tsc_);
      running_ = true;
    }
  }
  /// Call when a handler returned (or threw): records the lap.
  void end() noexcept {
    if (!counters_ || !running_) return;
    const std::uint64_t now = LapClock::now(tsc_);
    counters_->observe_handler_ns(LapClock::elapsed_ns(last_, now, tsc_));
    last_ = now;
    if (!tsc_) LapClock::maybe_calibrate(now);
  }
  /// Work that is not a timed handler happened since the last end().
  void skip() noexcept { running_ = false; }

  /// One handler call: timed from construction to destruction (a throw included) when `timed`;
  /// otherwise work that is not a timed handler (skip()).
  class Lap {
  public:
    Lap(HandlerLaps& laps, bool timed) noexcept : laps_(timed ? &laps : nullptr) {
      if (laps_)
        laps_->begin();
      else
        laps.skip();
    }
    ~Lap() {
      if (laps_) laps_->end();
    }
    Lap(const Lap&) = delete;
    Lap& operator=(const Lap&) = delete;

  private:
    HandlerLaps* laps_;
  };

private:
  ThreadCounters* counters_;
  std::uint64_t last_ = 0;
  bool running_ = false;
  bool tsc_ = false; // the running laps read the TSC
};

} // namespace tao::detail
