// Timer precision (issue 5), printed as key=value lines:
//  1. lateness of 100,000 connection timers on one loop that also echoes traffic (a client
//     pings the server as fast as it can meanwhile): p50, p99, max, and how many fired early;
//  2. drift of a 10 ms periodic timer after --periods periods (due vs start + k * interval, and
//     how late the last firing actually ran).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <tao/tao.hpp>

namespace {

struct Ping {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Ping decode(tao::ByteView in) { return {in.str()}; }
};

using us = std::chrono::microseconds;

long long pct(std::vector<long long>& v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

/// A blocking client that pings (16-byte TLV frames) until told to stop; returns round trips.
long long pinger(std::uint16_t port, std::atomic<bool>& stop) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char frame[16] = {1, 0, 0, 0, 8, 0, 0, 0, 'p', 'i', 'n', 'g', 'p', 'i', 'n', 'g'};
  char in[16];
  long long n = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    if (::send(fd, frame, sizeof frame, 0) != sizeof frame) break;
    std::size_t got = 0;
    while (got < sizeof in) {
      ssize_t r = ::recv(fd, in + got, sizeof in - got, 0);
      if (r <= 0) {
        ::close(fd);
        return n;
      }
      got += static_cast<std::size_t>(r);
    }
    ++n;
  }
  ::close(fd);
  return n;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao timer precision"};
  int timers = 100000;
  int spread_ms = 2000;
  int periods = 1000;
  app.add_option("--timers", timers, "connection timers on the loop")->capture_default_str();
  app.add_option("--spread-ms", spread_ms, "their due times spread over this")
      ->capture_default_str();
  app.add_option("--periods", periods, "periods of the 10 ms periodic timer")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level("warn");

  // 1. Lateness under load.
  {
    tao::Server server({.host = "127.0.0.1", .port = 0, .io_threads = 1, .workers = 0});
    server.handle<Ping>([](tao::Connection& c, const Ping& p) { c.write(p); });
    std::vector<long long> late(static_cast<std::size_t>(timers), 0);
    std::atomic<int> fired{0};
    std::promise<void> all;
    std::atomic<bool> first{true};
    server.on_connect([&](tao::Connection& c) {
      if (!first.exchange(false)) return true; // the pinger's connection carries no timers
      const auto start = tao::Clock::now() + std::chrono::milliseconds(100);
      for (int i = 0; i < timers; ++i) {
        const auto due = start + std::chrono::microseconds(static_cast<long long>(i) * spread_ms *
                                                           1000 / timers);
        c.run_at(due, [&, i](tao::Connection&, tao::TimePoint d) {
          late[static_cast<std::size_t>(i)] =
              std::chrono::duration_cast<std::chrono::nanoseconds>(tao::Clock::now() - d).count();
          if (++fired == timers) all.set_value();
        });
      }
      return true;
    });
    server.start();
    std::atomic<bool> stop{false};
    // The timer holder: a connection that stays open and idle.
    int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(holder, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
    while (first.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto pings = std::async(std::launch::async, [&] { return pinger(server.port(), stop); });
    all.get_future().wait();
    stop = true;
    const long long round_trips = pings.get();
    const long long early =
        std::count_if(late.begin(), late.end(), [](long long x) { return x < 0; });
    std::printf("case=timers_under_load timers=%d spread_ms=%d round_trips_meanwhile=%lld "
                "late_p50_us=%.1f late_p99_us=%.1f late_max_us=%.1f fired_early=%lld\n",
                timers, spread_ms, round_trips, pct(late, 0.50) / 1e3, pct(late, 0.99) / 1e3,
                static_cast<double>(*std::max_element(late.begin(), late.end())) / 1e3, early);
    ::close(holder);
  }

  // 2. Drift of a periodic timer.
  {
    tao::TimerQueue q;
    const auto interval = std::chrono::milliseconds(10);
    std::vector<long long> late;
    late.reserve(static_cast<std::size_t>(periods));
    std::promise<std::pair<tao::TimePoint, tao::TimePoint>> last; // due, ran at
    std::atomic<int> k{0};
    const auto created = tao::Clock::now();
    tao::TimerId id = 0;
    tao::TimePoint first_due{};
    id = q.run_every(interval, [&](tao::TimePoint due) {
      const auto now = tao::Clock::now();
      if (k == 0) first_due = due;
      late.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - due).count());
      if (++k == periods) last.set_value({due, now});
    });
    auto [due, ran] = last.get_future().get();
    q.cancel(id);
    // Phase: every due time must sit on first_due + k * interval (0 = no drift at all); periods
    // skipped because a firing ran more than a whole interval late are counted separately.
    const auto since_first = due - first_due;
    const auto phase_error = since_first % interval;
    const long long skipped = since_first / interval - (periods - 1);
    std::printf("case=periodic_drift interval_ms=10 periods=%d first_due_after_create_us=%lld "
                "phase_error_us=%lld periods_skipped=%lld last_ran_late_us=%lld late_p50_us=%.1f "
                "late_p99_us=%.1f late_max_us=%.1f\n",
                periods,
                static_cast<long long>(std::chrono::duration_cast<us>(first_due - created).count()),
                static_cast<long long>(std::chrono::duration_cast<us>(phase_error).count()),
                skipped, static_cast<long long>(std::chrono::duration_cast<us>(ran - due).count()),
                pct(late, 0.50) / 1e3, pct(late, 0.99) / 1e3,
                static_cast<double>(*std::max_element(late.begin(), late.end())) / 1e3);
  }
  return 0;
}
