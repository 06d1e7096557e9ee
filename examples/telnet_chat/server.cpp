// Telnet chat on the line codec: no client program needed, join with `nc 127.0.0.1 PORT` or
// `telnet 127.0.0.1 PORT`. Every line is a message; /nick NAME renames you, /who lists who is
// here, /quit leaves.
#include "common/example.hpp"

namespace {

/// A line of text: every frame of the line codec has its configured type (1 here).
struct Line {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Line decode(tao::ByteView in) { return {in.str()}; }
};

std::string nick(const tao::Connection& c) {
  return c.context_as<std::string>("nick").value_or("guest" + std::to_string(c.id()));
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao telnet chat server (line codec)"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  app.get_option("--workers")->description("ignored: the handlers always run on the loops");
  std::size_t max_line = 1024;
  app.add_option("--max-line", max_line, "longest line accepted, in bytes")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::ServerOptions o = example::server_options(f);
  o.workers = 0; // handlers are short and never block: run them on the loops
  // Lines in ("\n" or "\r\n"), lines out with "\r\n" as telnet expects. A line carries no type
  // number, so every line is a Line (type 1); a longer line than max_line closes the connection.
  o.codec = std::make_shared<tao::LineCodec>(tao::LineOptions{
      .max_line_length = max_line, .delimiter = "\r\n", .message_type = Line::type});
  // Lines have no room for heartbeats, and a person may stay silent: no idle timeout.
  o.heartbeat = {.interval = std::chrono::milliseconds(0), .timeout = std::chrono::milliseconds(0)};
  tao::Server server(o);

  auto say_all = [&server](const std::string& text) { server.broadcast(Line{text}); };
  server.on_connect([&](tao::Connection& c) {
    c.write(Line{"* welcome, " + nick(c) + "! /nick NAME to rename, /who, /quit"});
    say_all("* " + nick(c) + " joined");
    return true;
  });
  server.on_close([&](tao::Connection& c) { say_all("* " + nick(c) + " left"); });
  server.handle<Line>([&](tao::Connection& c, const Line& l) {
    const std::string& t = l.text;
    if (t.empty()) return;
    if (t == "/quit") {
      c.write(Line{"* bye"});
      c.close();
    } else if (t == "/who") {
      std::string names;
      server.for_each_connection(
          [&](const tao::ConnectionPtr& other) { names += " " + nick(*other); });
      c.write(Line{"* here:" + names});
    } else if (t.rfind("/nick ", 0) == 0 && t.size() > 6) {
      const std::string old = nick(c);
      c.set_context("nick", t.substr(6));
      say_all("* " + old + " is now " + nick(c));
    } else {
      say_all(nick(c) + ": " + t);
    }
  });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("telnet chat listening on {}\njoin with: nc {} {}\n",
             server.local_endpoint().to_string(), f.host == "0.0.0.0" ? "127.0.0.1" : f.host,
             server.port());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
