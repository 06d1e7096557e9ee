#include <tao/timer.hpp>

#include "loop.hpp"

namespace tao {

namespace {
detail::TimerService::Callback wrap(std::function<void(TimePoint)> fn) {
  return [f = std::move(fn)](TimePoint due) { f(due); };
}
} // namespace

TimerQueue::TimerQueue() : loop_(std::make_unique<detail::Loop>(0, 0, 0, 0)) { loop_->start(); }

TimerQueue::~TimerQueue() { loop_->stop(); }

TimerId TimerQueue::run_at(TimePoint when, std::function<void(TimePoint)> fn) {
  return loop_->timers().add(when, Duration::zero(), wrap(std::move(fn)));
}

TimerId TimerQueue::run_after(Duration delay, std::function<void(TimePoint)> fn) {
  return run_at(Clock::now() + delay, std::move(fn));
}

TimerId TimerQueue::run_every(Duration interval, std::function<void(TimePoint)> fn) {
  if (interval.count() <= 0) return 0;
  return loop_->timers().add(Clock::now() + interval, interval, wrap(std::move(fn)));
}

bool TimerQueue::cancel(TimerId id) { return loop_->timers().cancel(id); }

std::size_t TimerQueue::size() const { return loop_->timers().size(); }

} // namespace tao
