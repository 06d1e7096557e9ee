// Pingpong server: sends every frame back as it came, without decoding it (muduo's and Go Tao's
// pingpong). Frames whose type has no handler go to on_message, which sees them raw: the payload
// is a view into the read buffer, written back without a copy into a message object.
#include "common/example.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao pingpong server"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  // --workers 0 (the default): handlers on the loops, the fastest placement.
  tao::Server server(example::server_options(f));
  server.on_message(
      [](tao::Connection& c, const tao::Frame& frame) { c.write_raw(frame.type, frame.payload); });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("pingpong server listening on {}\n", server.local_endpoint().to_string());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
