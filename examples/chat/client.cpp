// Chat client: sends each line from stdin, prints every message received, quits on "bye" or at
// the end of input.
#include <iostream>

#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat client"};
  example::Flags f;
  example::add_common_flags(app, f, false);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Client client({.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
  client.handle<example::Text>([](tao::Connection&, const example::Text& m) {
    std::string_view t = m.text;
    if (!t.empty() && t.back() == '\n') t.remove_suffix(1); // Go Tao's client keeps the newline
    fmt::print("{}\n", t);
    std::fflush(stdout);
  });
  client.on_close([](tao::Connection& c) {
    if (c.close_reason() != tao::errc::closed_locally) fmt::print(stderr, "disconnected\n");
  });
  if (auto ec = client.connect()) {
    fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "bye") break;
    if (line.empty()) continue;
    // Sent with its newline, as Go Tao's chat client does, so Go clients print it well.
    if (auto ec = client.write(example::Text{line + "\n"})) {
      fmt::print(stderr, "send failed: {}\n", ec.message());
      break;
    }
  }
  client.stop(); // graceful: what was written is sent before the connection closes
  return 0;
}
