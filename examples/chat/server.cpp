// Chat server: every chat message (type 1, payload = text) goes to every connected client,
// the sender included (Go Tao's examples/chat/server).
#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat server"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  app.get_option("--workers")
      ->default_val(0)
      ->description("worker threads for handlers (0 = one per hardware thread)");
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Server server({.host = f.host,
                      .port = f.port,
                      .io_threads = example::threads_or_hardware(f.io_threads),
                      .workers = example::threads_or_hardware(f.workers)});
  server.on_connect([](tao::Connection& c) {
    tao::logger()->info("{} joined", c.name());
    return true;
  });
  server.on_close([](tao::Connection& c) { tao::logger()->info("{} left", c.name()); });
  server.handle<example::Text>(
      [&server](tao::Connection&, const example::Text& m) { server.broadcast(m); });
  server.start();
  fmt::print("chat server listening on {}\n"
             "join from another terminal with: tao-chat-client --host {} --port {}\n",
             server.local_endpoint().to_string(), f.host == "0.0.0.0" ? "127.0.0.1" : f.host,
             server.port());
  std::fflush(stdout);
  return server.run_until_signal();
}
