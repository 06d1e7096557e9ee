// Millisecond-precision timers on the monotonic clock: per connection (Connection::run_at,
// run_after, run_every, cancel_timer), server-wide (Handlers::schedule_every) and standalone
// (TimerQueue, below).
// Thread safety: TimerQueue's members are safe from any thread, its own callbacks included.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace tao {

/// The clock of every timer: monotonic, so wall-clock changes never move a timer.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

/// Identifies a pending timer; 0 is never a valid id. Ids are not reused while their timer is
/// pending, so cancelling a stale id is harmless.
using TimerId = std::uint64_t;

namespace detail {
class Loop;
}

/// Timers on a thread of their own, for programs that need timers without connections (Go Tao's
/// timer example). Callbacks run on that thread, one at a time; equal deadlines fire in the order
/// they were scheduled; nothing fires early.
/// Thread safety: every member is safe from any thread, the queue's own callbacks included.
class TimerQueue {
public:
  TimerQueue();
  /// Cancels what is pending and joins the thread.
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  /// Calls fn(due) once at `when`.
  TimerId run_at(TimePoint when, std::function<void(TimePoint due)> fn);
  /// Calls fn(due) once after `delay`.
  TimerId run_after(Duration delay, std::function<void(TimePoint due)> fn);
  /// Calls fn(due) at start + k * interval for k = 1, 2, ...: a late firing does not push the
  /// next ones back; periods missed entirely (callback slower than the interval) are skipped.
  TimerId run_every(Duration interval, std::function<void(TimePoint due)> fn);
  /// Cancels a timer. Returns true if it was still pending (a periodic timer always is until
  /// cancelled, even from inside its own callback); false if it already ran or is unknown.
  bool cancel(TimerId id);
  /// Timers pending.
  std::size_t size() const;

private:
  std::unique_ptr<detail::Loop> loop_;
};

} // namespace tao
