// Timers without connections (Go Tao's time_display example): prints the time every second for
// --seconds seconds, and says so once when a one-shot timer fires half way.
#include <condition_variable>
#include <ctime>
#include <mutex>

#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao timer example"};
  int seconds = 5;
  std::string log_level = "info";
  app.add_option("--seconds", seconds, "how long to run")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(log_level);

  tao::TimerQueue timers;
  std::mutex m;
  std::condition_variable cv;
  int ticks = 0;
  const auto start = tao::Clock::now();
  timers.run_every(std::chrono::seconds(1), [&](tao::TimePoint due) {
    const std::time_t now = std::time(nullptr);
    char text[32];
    std::strftime(text, sizeof text, "%H:%M:%S", std::localtime(&now));
    const auto late =
        std::chrono::duration_cast<std::chrono::microseconds>(tao::Clock::now() - due);
    fmt::print("tick {} at {} ({} us after its due time)\n", ticks + 1, text, late.count());
    std::fflush(stdout);
    std::lock_guard l(m);
    ++ticks;
    cv.notify_all();
  });
  timers.run_after(std::chrono::milliseconds(seconds * 500), [&](tao::TimePoint due) {
    fmt::print("one-shot timer fired {} ms after start\n",
               std::chrono::duration_cast<std::chrono::milliseconds>(due - start).count());
    std::fflush(stdout);
  });
  std::unique_lock l(m);
  cv.wait(l, [&] { return ticks >= seconds; });
  return 0;
}
