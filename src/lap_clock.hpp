// The clock that times message handlers (HandlerLaps): one read per message, so its cost shows.
// steady_clock::now() is a vDSO clock_gettime, ~25 ns in a tight loop on the VMs measured and about
// 8 % of the server's CPU per message in a 100 x 16 B x 16 echo (A/B against timing off); the
// processor's time-stamp counter (rdtsc) costs about what no timing does. So on x86-64 with an
// invariant TSC (constant rate, running in every power state, as the CPUID bit says) laps are
// read from the TSC and scaled to nanoseconds; elsewhere, and until the scale is known, from
// steady_clock.
//
// The scale comes from two (steady_clock, TSC) pairs: one taken at start-up, one taken by the
// first lap that ends at least calibrate_after later (so, with the first messages, never a wait).
// Each TSC value is the midpoint of two reads around the steady_clock read; a pair whose reads lie
// far apart (the thread was preempted between them) is not used and the next lap tries again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>
#define TAO_LAP_CLOCK_TSC 1
#endif

namespace tao::detail {

class LapClock {
public:
  /// A reading in the clock's ticks: TSC ticks when tsc() says so, else steady_clock nanoseconds.
  static std::uint64_t now([[maybe_unused]] bool tsc) noexcept {
#ifdef TAO_LAP_CLOCK_TSC
    if (tsc) return __rdtsc();
#endif
    return steady_ns();
  }

  /// True once laps may read the TSC (the scale is known).
  static bool tsc() noexcept { return ns_per_tick_.load(std::memory_order_relaxed) > 0; }

  /// Nanoseconds between two readings `from` and `to` (to >= from, else 0) of the same clock.
  static std::uint64_t elapsed_ns(std::uint64_t from, std::uint64_t to, bool tsc) noexcept {
    if (to <= from) return 0; // (a thread moved to a core whose counter lags: not a negative lap)
    if (!tsc) return to - from;
    return static_cast<std::uint64_t>(static_cast<double>(to - from) *
                                      ns_per_tick_.load(std::memory_order_relaxed));
  }

  /// Called by a lap timed with steady_clock (ending at `steady_now`, in steady_ns()): learns the
  /// TSC's scale once enough time has passed since start-up.
  static void maybe_calibrate(std::uint64_t steady_now) noexcept {
#ifdef TAO_LAP_CLOCK_TSC
    const Start& s = start();
    if (!s.valid || steady_now - s.steady < calibrate_after_ns || tsc()) return;
    // Tried a few times at most (each try is three clock reads): a counter that went backwards
    // since start-up (reset by a suspend or a VM restore) leaves the laps on steady_clock.
    if (failed_.load(std::memory_order_relaxed) >= max_failures) return;
    std::uint64_t steady = 0;
    std::uint64_t tick = 0;
    if (!pair(steady, tick) || tick <= s.tick || steady <= s.steady) {
      failed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    double expected = 0.0; // the first to calibrate sets the scale; the others find it set
    ns_per_tick_.compare_exchange_strong(
        expected, static_cast<double>(steady - s.steady) / static_cast<double>(tick - s.tick),
        std::memory_order_relaxed);
#else
    (void)steady_now;
#endif
  }

  static std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }

private:
  // 200 ms: the pairs' own uncertainty (see max_pair_ticks) is then under 1e-4 of the scale.
  static constexpr std::uint64_t calibrate_after_ns = 200'000'000;
  static constexpr int max_failures = 8;
  static inline std::atomic<int> failed_{0};

  // Zero until calibrated (and forever without an invariant TSC).
  static inline std::atomic<double> ns_per_tick_{0.0};

#ifdef TAO_LAP_CLOCK_TSC
  struct Start {
    bool valid = false;
    std::uint64_t steady = 0;
    std::uint64_t tick = 0;
  };

  static bool invariant_tsc() noexcept {
    unsigned a = 0, b = 0, c = 0, d = 0;
    // (GCC's cpuid.h returns unsigned int here, clang's int.)
    if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) < 0x80000007u) return false;
    __cpuid(0x80000007u, a, b, c, d);
    return (d >> 8) & 1u;
  }

  // A steady_clock reading and the TSC at the same moment (within a few microseconds).
  static bool pair(std::uint64_t& steady, std::uint64_t& tick) noexcept {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::uint64_t before = __rdtsc();
      steady = steady_ns();
      const std::uint64_t after = __rdtsc();
      if (after > before && after - before < max_pair_ticks) {
        tick = before + (after - before) / 2;
        return true;
      }
    }
    return false;
  }
  // Ticks between the two reads of a pair: 20,000 is ~5 us at 4 GHz, ~40 us at 500 MHz, against
  // calibrate_after: well under 1e-4 of the scale even if the steady read sat at either end.
  static constexpr std::uint64_t max_pair_ticks = 20'000;

  static const Start& start() noexcept {
    static const Start s = [] {
      Start r;
      r.valid = invariant_tsc() && pair(r.steady, r.tick);
      return r;
    }();
    return s;
  }
  // Taken at start-up (static initialisation), not at the first lap: the first calibration can
  // then come calibrate_after after start-up.
  static inline const Start& start_at_load_ = start();
#endif
};

} // namespace tao::detail
