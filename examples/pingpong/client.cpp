// Pingpong client: opens --connections connections, keeps --in-flight messages of --size bytes in
// flight on each for --seconds (every echo is sent again at once), then prints the throughput.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/example.hpp"

namespace {

constexpr tao::MessageType ping_type = 1;

struct Counters {
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> wrong_size{0};
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao pingpong client"};
  example::Flags f;
  example::add_common_flags(app, f, false);
  std::size_t connections = 10;
  std::size_t in_flight = 16;
  std::size_t size = 16;
  double seconds = 5;
  app.add_option("--connections", connections, "connections (one client, one thread each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--in-flight", in_flight, "messages kept in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--size", size, "payload bytes per message")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--seconds", seconds, "how long to run")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  std::atomic<bool> running{true};
  std::vector<Counters> counters(connections);
  std::vector<std::unique_ptr<tao::Client>> clients;
  for (std::size_t i = 0; i < connections; ++i) {
    auto client = std::make_unique<tao::Client>(
        tao::ClientOptions{.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
    Counters& n = counters[i];
    // Raw: the echo is counted and sent back from the read buffer, nothing is decoded.
    client->handle_raw(ping_type, [&n, &running, size](tao::Connection& c, const tao::Frame& fr) {
      if (fr.payload.size() != size) n.wrong_size.fetch_add(1, std::memory_order_relaxed);
      if (!running.load(std::memory_order_relaxed)) return;
      n.messages.fetch_add(1, std::memory_order_relaxed);
      n.bytes.fetch_add(fr.payload.size(), std::memory_order_relaxed);
      c.write_raw(ping_type, fr.payload);
    });
    if (auto ec = client->connect()) {
      fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
      return 1;
    }
    clients.push_back(std::move(client));
  }

  const std::string payload(size, 'x');
  const auto start = tao::Clock::now();
  for (auto& client : clients)
    for (std::size_t k = 0; k < in_flight; ++k)
      if (auto ec = client->write(tao::RawMessage{ping_type, payload})) {
        fmt::print(stderr, "write failed: {}\n", ec.message());
        return 1;
      }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  running = false; // handlers stop counting and stop sending
  const double elapsed = std::chrono::duration<double>(tao::Clock::now() - start).count();
  std::uint64_t messages = 0, bytes = 0, wrong = 0;
  for (const Counters& n : counters) {
    messages += n.messages.load();
    bytes += n.bytes.load();
  }
  for (auto& client : clients)
    client->stop();
  for (const Counters& n : counters)
    wrong += n.wrong_size.load();

  fmt::print("{} connections x {} in flight x {} B for {:.1f} s: {} messages echoed\n", connections,
             in_flight, size, elapsed, messages);
  fmt::print("{:.0f} messages/s, {:.2f} MiB/s\n", messages / elapsed,
             bytes / elapsed / (1024.0 * 1024.0));
  if (wrong != 0) {
    fmt::print(stderr, "{} echoes had the wrong size\n", wrong);
    return 1;
  }
  if (messages == 0) {
    fmt::print(stderr, "no echo arrived\n");
    return 1;
  }
  return 0;
}
