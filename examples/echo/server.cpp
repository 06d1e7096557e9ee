// Echo server: writes every message back unchanged (Go Tao's examples/echo/server).
// It logs nothing per message, so it doubles as the benchmark server.
#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao echo server"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Server server(example::server_options(f));
  server.handle<example::Text>([](tao::Connection& c, const example::Text& m) { c.write(m); });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("echo server listening on {}\n", server.local_endpoint().to_string());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
