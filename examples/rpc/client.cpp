// Request/response client: sends --count requests, each with a fresh id; every --slow-every-th
// asks the server for --slow-ms of work. A connection timer (run_after) per request gives up on it
// after --timeout-ms; a reply cancels its timer (cancel_timer). Replies are matched by id, so a
// reply for a request that already timed out is recognised and ignored.
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "common/example.hpp"
#include "rpc/messages.hpp"

namespace {

struct Pending {
  tao::TimerId timer = 0;
  tao::TimePoint sent;
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao request/response client"};
  example::Flags f;
  f.io_threads = 1;
  example::add_common_flags(app, f, false);
  int count = 10;
  int slow_every = 3;
  std::uint32_t slow_ms = 600;
  int timeout_ms = 300;
  std::string text = "request";
  app.add_option("--count", count, "requests to send")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--slow-every", slow_every, "every n-th request is slow (0 = none)")
      ->capture_default_str();
  app.add_option("--slow-ms", slow_ms, "work time a slow request asks for")->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "how long to wait for each reply")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--text", text, "request text")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  std::mutex m; // the handler and the timers run on the client's loop, the sends on this thread
  std::condition_variable cv;
  std::unordered_map<std::uint64_t, Pending> pending; // by request id
  int answered = 0, timed_out = 0, late = 0, replies = 0;

  tao::Client client({.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
  client.handle<rpc::Reply>([&](tao::Connection& c, const rpc::Reply& r) {
    std::lock_guard l(m);
    ++replies;
    auto it = pending.find(r.id);
    if (it == pending.end()) {
      ++late;
      fmt::print("reply {} arrived after its timeout: ignored\n", r.id);
    } else {
      c.cancel_timer(it->second.timer);
      const std::chrono::duration<double, std::milli> took = tao::Clock::now() - it->second.sent;
      fmt::print("reply {}: {} ({:.1f} ms)\n", r.id, r.text, took.count());
      pending.erase(it);
      ++answered;
    }
    std::fflush(stdout);
    cv.notify_all();
  });
  if (auto ec = client.connect()) {
    fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
    return 1;
  }
  tao::ConnectionPtr conn = client.connection();
  const auto timeout = std::chrono::milliseconds(timeout_ms);

  for (int i = 1; i <= count; ++i) {
    const auto id = static_cast<std::uint64_t>(i);
    const bool slow = slow_every > 0 && i % slow_every == 0;
    rpc::Request req{id, slow ? slow_ms : 0, fmt::format("{} {}", text, i)};
    {
      // Registered before the write, so the reply cannot arrive before its entry exists.
      std::lock_guard l(m);
      pending[id] = Pending{0, tao::Clock::now()};
    }
    const tao::TimerId timer = conn->run_after(timeout, [&, id](tao::Connection&, tao::TimePoint) {
      std::lock_guard l(m);
      if (pending.erase(id) == 0) return; // answered meanwhile
      ++timed_out;
      fmt::print("request {} timed out after {} ms\n", id, timeout_ms);
      std::fflush(stdout);
      cv.notify_all();
    });
    {
      std::lock_guard l(m);
      if (auto it = pending.find(id); it != pending.end()) it->second.timer = timer;
    }
    if (auto ec = conn->write(req)) {
      fmt::print(stderr, "request {} not sent: {}\n", id, ec.message());
      return 1;
    }
  }

  std::unique_lock l(m);
  // Every request ends answered or timed out (the timers see to that while the connection lives).
  if (!cv.wait_for(l, timeout + std::chrono::seconds(5),
                   [&] { return answered + timed_out == count; })) {
    fmt::print(stderr, "the connection was lost with {} requests open\n", pending.size());
    return 1;
  }
  // Give the late replies a chance to show up, to see them ignored.
  cv.wait_for(l, std::chrono::milliseconds(slow_ms) + std::chrono::seconds(1),
              [&] { return replies == count; });
  fmt::print("{} requests: {} answered in time, {} timed out; {} late replies ignored\n", count,
             answered, timed_out, late);
  l.unlock();
  client.stop();
  return 0;
}
