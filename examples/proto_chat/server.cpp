// Structured chat server (Protobuf): stamps each line with a sequence number and its clock, then
// sends it to everyone, the sender included.
#include <atomic>
#include <chrono>

#include "proto_chat/messages.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat server with Protobuf messages"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  app.get_option("--workers")->description("ignored: the handlers always run on the loops");
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::ServerOptions o = example::server_options(f);
  o.workers = 0; // on the loops: seq is then taken in arrival order per loop
  tao::Server server(o);
  std::atomic<std::uint64_t> seq{0};
  server.handle<example::ChatLine>([&](tao::Connection&, const example::ChatLine& in) {
    example::ChatLine out = in;
    out->set_seq(++seq);
    out->set_sent_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
    server.broadcast(out);
  });
  server.on_error([](tao::Connection& c, const tao::Error& e) {
    tao::logger()->warn("{}: {}", c.name(), e.message); // e.g. bytes that are not a chat.Line
  });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("proto_chat server listening on {}\n"
             "join with: tao-proto_chat-client --host {} --port {} --name alice\n",
             server.local_endpoint().to_string(), f.host == "0.0.0.0" ? "127.0.0.1" : f.host,
             server.port());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
