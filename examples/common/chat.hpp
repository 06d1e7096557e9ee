// The chat example's server and client, shared by `chat` (plain TCP) and `tls_chat` (TLS).
#pragma once

#include <iostream>
#include <optional>

#include "common/example.hpp"

namespace example {

/// Every chat message (type 1, payload = text) goes to every connected client, the sender
/// included (Go Tao's chat server).
inline int run_chat_server(const Flags& f, std::optional<tao::TlsOptions> tls) {
  tao::ServerOptions o = server_options(f);
  o.tls = std::move(tls);
  tao::Server server(o);
  server.on_connect([](tao::Connection& c) {
    tao::logger()->info("{} joined", c.name());
    return true;
  });
  server.on_close([](tao::Connection& c) { tao::logger()->info("{} left", c.name()); });
  server.handle<Text>([&server](tao::Connection&, const Text& m) { server.broadcast(m); });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  const bool secure = o.tls.has_value();
  fmt::print("{}chat server listening on {}\n"
             "join from another terminal with: tao-{}chat-client --host {} --port {}\n",
             secure ? "TLS " : "", server.local_endpoint().to_string(), secure ? "tls_" : "",
             f.host == "0.0.0.0" ? "127.0.0.1" : f.host, server.port());
  print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}

/// Sends each line from stdin, prints every message received, quits on "bye" or end of input.
inline int run_chat_client(const Flags& f, std::optional<tao::TlsOptions> tls) {
  tao::ClientOptions o;
  o.host = f.host;
  o.port = f.port;
  o.io_threads = 1;
  o.workers = f.workers;
  o.tls = std::move(tls);
  tao::Client client(o);
  client.handle<Text>([](tao::Connection&, const Text& m) {
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
    if (auto ec = client.write(Text{line + "\n"})) {
      fmt::print(stderr, "send failed: {}\n", ec.message());
      break;
    }
  }
  client.stop(); // graceful: what was written is sent before the connection closes
  return 0;
}

} // namespace example
