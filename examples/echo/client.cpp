// Echo client: sends --count messages, prints each echo, exits 0 when all came back.
#include <atomic>
#include <chrono>
#include <future>

#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao echo client"};
  example::Flags f;
  f.io_threads = 1;
  example::add_common_flags(app, f, false);
  int count = 10;
  std::string text = "hello, world";
  app.add_option("--count", count, "messages to send")->capture_default_str();
  app.add_option("--text", text, "message text")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Client client({.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
  std::atomic<int> received{0};
  std::promise<void> all;
  client.handle<example::Text>([&](tao::Connection&, const example::Text& m) {
    fmt::print("echo: {}\n", m.text);
    if (++received == count) all.set_value();
  });
  if (auto ec = client.connect()) {
    fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    if (auto ec = client.write(example::Text{text})) {
      fmt::print(stderr, "write failed: {}\n", ec.message());
      return 1;
    }
  }
  if (count > 0 &&
      all.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    fmt::print(stderr, "only {} of {} echoes arrived\n", received.load(), count);
    return 1;
  }
  client.stop();
  return 0;
}
