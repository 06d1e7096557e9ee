// Structured chat client (Protobuf): sends each stdin line as a chat.Line from --name, prints
// every line the server broadcasts as "#seq name: text". At the end of input it waits (at most
// 5 s) until its own lines came back, so `printf 'hi\n' | tao-proto_chat-client` shows them.
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>

#include "proto_chat/messages.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat client with Protobuf messages"};
  example::Flags f;
  f.io_threads = 1;
  example::add_common_flags(app, f, false);
  std::string name = "guest";
  app.add_option("--name", name, "your name in the chat")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Client client({.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
  std::mutex mutex;
  std::condition_variable cv;
  int sent = 0, echoed = 0;
  client.handle<example::ChatLine>([&](tao::Connection&, const example::ChatLine& m) {
    fmt::print("#{} {}: {}\n", m->seq(), m->from(), m->text());
    std::fflush(stdout);
    if (m->from() == name) {
      std::lock_guard lock(mutex);
      ++echoed;
      cv.notify_all();
    }
  });
  if (auto ec = client.connect()) {
    fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
    return 1;
  }
  std::string text;
  while (std::getline(std::cin, text)) {
    if (text.empty()) continue;
    example::ChatLine line;
    line->set_from(name);
    line->set_text(text);
    if (auto ec = client.write(line)) {
      fmt::print(stderr, "send failed: {}\n", ec.message());
      return 1;
    }
    std::lock_guard lock(mutex);
    ++sent;
  }
  std::unique_lock lock(mutex);
  const bool all = cv.wait_for(lock, std::chrono::seconds(5), [&] { return echoed >= sent; });
  lock.unlock();
  client.stop();
  return all ? 0 : 1;
}
