// Metrics of a server or a client: a snapshot struct (Server::metrics(), Client::metrics()), its
// Prometheus text rendering, and the options of the optional HTTP endpoint (Go Tao's MonitorOn).
// Counters are kept per event loop and per worker thread, each written by its own thread only,
// and summed when a snapshot is taken, so the hot path touches no shared cache line.
// Thread safety: a snapshot is a plain value; to_prometheus() is safe from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tao {

/// Upper bounds (seconds) of the handler run-time histogram buckets; +Inf is implied.
inline constexpr std::array<double, 14> handler_seconds_bounds = {
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0};

/// A histogram read at one moment (the tao_handler_seconds buckets).
struct HistogramSnapshot {
  /// counts[i]: observations <= handler_seconds_bounds[i] (not cumulative); the last entry
  /// holds those above every bound.
  std::array<std::uint64_t, handler_seconds_bounds.size() + 1> counts{};
  double sum_seconds = 0;  ///< the sum of all observations, in seconds
  std::uint64_t count = 0; ///< the number of observations
};

/// Every metric at one moment: Server::metrics() / Client::metrics(). A plain value, safe to
/// copy and keep on any thread.
struct MetricsSnapshot {
  // Gauges.
  std::uint64_t connections_current = 0;  ///< open connections (registered, not yet closed)
  std::uint64_t worker_queue_depth = 0;   ///< work waiting for a worker: one per read's messages,
                                          ///< per callback
  std::uint64_t worker_backlog_bytes = 0; ///< message bytes handed to workers, handlers not
                                          ///< finished (see max_worker_backlog)
  std::uint64_t queued_out_bytes = 0;     ///< bytes accepted by write() not yet sent
  std::uint64_t timers_active = 0;        ///< pending timers on the event loops
  // Counters, since start.
  std::uint64_t connections_accepted = 0; ///< connections that started (server: accepted)
  std::uint64_t connections_refused = 0;  ///< server: refused by max_connections
  std::uint64_t connections_closed = 0;   ///< connections that finished closing
  std::uint64_t frames_in = 0;            ///< complete frames received, heartbeats included
  std::uint64_t frames_out = 0;      ///< frames sent (a write_encoded() of several counts once)
  std::uint64_t bytes_in = 0;        ///< stream bytes received (after TLS decryption)
  std::uint64_t bytes_out = 0;       ///< stream bytes sent (before TLS encryption)
  std::uint64_t protocol_errors = 0; ///< bad frame, failed decode, bad heartbeat, truncated frame
  std::uint64_t heartbeat_timeouts = 0; ///< connections closed for a silent peer
  /// Run time of message handlers (on the loops and on the workers); empty when handler timing
  /// is off.
  HistogramSnapshot handler_seconds;
};

/// The snapshot in Prometheus text exposition format (version 0.0.4): every metric has a
/// "# HELP" and a "# TYPE" line and the prefix "tao_".
std::string to_prometheus(const MetricsSnapshot& m);

/// The HTTP endpoint that serves GET /metrics (Prometheus text format). It runs on a thread of
/// its own, never on the I/O loops.
struct MetricsHttpOptions {
  /// Loopback by default: metrics are not for the whole network unless you say so.
  std::string host = "127.0.0.1";
  /// 0 picks a free port; Server::metrics_port() tells which.
  std::uint16_t port = 0;
  /// Connections served at once; more are closed at once.
  std::size_t max_connections = 8;
  /// Request line plus headers; larger requests get 431 and a close.
  std::size_t max_header_bytes = 8u << 10;
  /// A request must arrive whole within this (also the keep-alive idle limit); else a close.
  std::chrono::milliseconds read_timeout{5000};
  /// Requests per keep-alive connection before the endpoint closes it.
  std::size_t max_requests_per_connection = 100;
};

/// What the framework measures (ServerOptions::metrics, ClientOptions::metrics).
struct MetricsOptions {
  /// Time every message handler (decoding included) for the tao_handler_seconds histogram: one
  /// clock read per message, plus one per batch of messages read at once (the time-stamp counter
  /// on x86-64 with an invariant TSC, ~10 ns; else steady_clock, tens of ns).
  /// Counters and gauges are always kept.
  bool handler_timing = true;
  /// Serve the metrics over HTTP; none = off (the default).
  std::optional<MetricsHttpOptions> http{};
};

} // namespace tao
