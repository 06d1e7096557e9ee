// What every example shares: the text message (type 1) and the command-line conventions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <tao/tao.hpp>

namespace example {

/// Go Tao's echo and chat message: type 1, the payload is the text.
struct Text {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Text decode(tao::ByteView in) { return {in.str()}; }
};

struct Flags {
  /// Set before add_common_flags() by servers whose handlers always run on a worker pool: their
  /// --workers 0 means one worker per hardware thread instead of handlers on the loops.
  bool zero_workers_means_hardware = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 12345;
  std::size_t io_threads = 0; // 0 = hardware threads
  std::size_t workers = 0;
  std::string log_level = "info";
  std::optional<std::uint16_t> metrics_port; // servers: none = no metrics endpoint, 0 = any port
  std::string metrics_host = "127.0.0.1";
  std::size_t read_chunk = tao::ServerOptions{}.read_chunk;
};

/// Adds --host, --port, --io-threads, --workers and --log-level; servers also get
/// --metrics-port, --metrics-host and --read-chunk.
inline void add_common_flags(CLI::App& app, Flags& f, bool server) {
  app.add_option("--host", f.host, "address to " + std::string(server ? "listen on" : "connect to"))
      ->capture_default_str();
  app.add_option("--port", f.port, "TCP port")->capture_default_str();
  app.add_option("--io-threads", f.io_threads, "event loops (0 = one per hardware thread)")
      ->capture_default_str();
  app.add_option("--workers", f.workers,
                 f.zero_workers_means_hardware
                     ? "worker threads for handlers (0 = one per hardware thread)"
                     : "worker threads for handlers (0 = handlers on the loops)")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  if (server) {
    app.add_option("--metrics-port", f.metrics_port,
                   "serve Prometheus metrics at http://<metrics-host>:<port>/metrics "
                   "(0 = a free port; off when not given)");
    app.add_option("--metrics-host", f.metrics_host, "address of the metrics endpoint")
        ->capture_default_str();
    app.add_option("--read-chunk", f.read_chunk, "bytes read per system call (at least 512)")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{512}, std::size_t{64} << 20));
  }
}

/// The metrics options the flags ask for: the HTTP endpoint only when --metrics-port is given.
inline tao::MetricsOptions metrics_options(const Flags& f) {
  tao::MetricsOptions m;
  if (f.metrics_port)
    m.http = tao::MetricsHttpOptions{.host = f.metrics_host, .port = *f.metrics_port};
  return m;
}

inline std::size_t threads_or_hardware(std::size_t n) { return n == 0 ? tao::hardware_threads : n; }

/// What every example server takes from the common flags: --host, --port, --io-threads (0 = one
/// loop per hardware thread), --workers (0 = handlers on the loops, or one worker per hardware
/// thread with Flags::zero_workers_means_hardware), the metrics endpoint of --metrics-port and
/// --metrics-host, and --read-chunk.
inline tao::ServerOptions server_options(const Flags& f) {
  tao::ServerOptions o;
  o.host = f.host;
  o.port = f.port;
  o.io_threads = threads_or_hardware(f.io_threads);
  o.workers = f.zero_workers_means_hardware ? threads_or_hardware(f.workers) : f.workers;
  o.metrics = metrics_options(f);
  o.read_chunk = f.read_chunk;
  return o;
}

/// Prints where the metrics endpoint listens, when there is one (after the server started).
inline void print_metrics_address(const tao::Server& server, const Flags& f) {
  if (server.metrics_port() == 0) return;
  const bool ipv6 = f.metrics_host.find(':') != std::string::npos;
  fmt::print("metrics on http://{}{}{}:{}/metrics\n", ipv6 ? "[" : "", f.metrics_host,
             ipv6 ? "]" : "", server.metrics_port());
}

} // namespace example
