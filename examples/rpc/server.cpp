// Request/response server: answers every Request with a Reply carrying the same id. A request that
// asks for work time is answered later by a connection timer (run_after), so a slow request never
// blocks a thread and the replies of one connection may overtake each other: the client matches
// them by id.
#include <algorithm>
#include <cctype>

#include "common/example.hpp"
#include "rpc/messages.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao request/response server"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  std::uint32_t max_work_ms = 10000;
  app.add_option("--max-work-ms", max_work_ms, "longest work time a request may ask for")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Server server(example::server_options(f));
  server.handle<rpc::Request>([max_work_ms](tao::Connection& c, const rpc::Request& req) {
    rpc::Reply reply{req.id, req.text};
    std::ranges::transform(reply.text, reply.text.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    if (req.work_ms == 0) {
      c.write(reply);
      return;
    }
    const auto work = std::chrono::milliseconds(std::min(req.work_ms, max_work_ms));
    tao::logger()->debug("{}: request {} answered in {} ms", c.name(), req.id, work.count());
    // The timer belongs to the connection: if the client leaves first, it is cancelled.
    c.run_after(work, [reply = std::move(reply)](tao::Connection& conn, tao::TimePoint) {
      conn.write(reply);
    });
  });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("request/response server listening on {}\n", server.local_endpoint().to_string());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
