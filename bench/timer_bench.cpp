// Timer cost: schedule 1,000,000 timers, then cancel them all. tao's per-loop heap (through the
// public TimerQueue, from a thread that is not the timer thread) against one asio::steady_timer
// per timer on an io_context, in the same run.
#include <chrono>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/timer.hpp>

namespace {

constexpr int kTimers = 1'000'000;

void BM_TaoTimerQueue_ScheduleThenCancel(benchmark::State& state) {
  tao::TimerQueue q;
  std::vector<tao::TimerId> ids(kTimers);
  for (auto _ : state) {
    const auto base = tao::Clock::now() + std::chrono::hours(1);
    for (int i = 0; i < kTimers; ++i)
      ids[i] = q.run_at(base + std::chrono::microseconds(i % 100000), [](tao::TimePoint) {});
    for (int i = 0; i < kTimers; ++i)
      benchmark::DoNotOptimize(q.cancel(ids[i]));
  }
  state.SetItemsProcessed(state.iterations() * kTimers * 2); // a schedule and a cancel each
}

void BM_AsioSteadyTimer_ScheduleThenCancel(benchmark::State& state) {
  boost::asio::io_context ctx;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers(kTimers);
  for (auto _ : state) {
    const auto base = std::chrono::steady_clock::now() + std::chrono::hours(1);
    for (int i = 0; i < kTimers; ++i) {
      timers[i] = std::make_unique<boost::asio::steady_timer>(
          ctx, base + std::chrono::microseconds(i % 100000));
      timers[i]->async_wait([](const boost::system::error_code&) {});
    }
    for (int i = 0; i < kTimers; ++i)
      timers[i]->cancel();
    ctx.restart();
    ctx.poll(); // run the cancelled handlers, as a loop would
    for (auto& t : timers)
      t.reset();
  }
  state.SetItemsProcessed(state.iterations() * kTimers * 2);
}

BENCHMARK(BM_TaoTimerQueue_ScheduleThenCancel)->Iterations(3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AsioSteadyTimer_ScheduleThenCancel)->Iterations(3)->Unit(benchmark::kMillisecond);

} // namespace
