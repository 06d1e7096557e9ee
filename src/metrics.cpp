#include <tao/metrics.hpp>

#include <fmt/format.h>

namespace tao {

namespace {

void one(std::string& out, const char* name, const char* type, const char* help,
         std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help,
                 type, value);
}

} // namespace

std::string to_prometheus(const MetricsSnapshot& m) {
  std::string out;
  out.reserve(4096);
  one(out, "tao_connections_current", "gauge", "Open connections.", m.connections_current);
  one(out, "tao_connections_accepted_total", "counter",
      "Connections started (server: accepted from the listener; client: connected).",
      m.connections_accepted);
  one(out, "tao_connections_refused_total", "counter",
      "Connections refused because max_connections was reached.", m.connections_refused);
  one(out, "tao_connections_closed_total", "counter", "Connections closed, for any reason.",
      m.connections_closed);
  one(out, "tao_frames_in_total", "counter", "Complete frames received, heartbeats included.",
      m.frames_in);
  one(out, "tao_frames_out_total", "counter", "Frames sent, heartbeats included.", m.frames_out);
  one(out, "tao_bytes_in_total", "counter", "Bytes received (after TLS decryption).", m.bytes_in);
  one(out, "tao_bytes_out_total", "counter", "Bytes sent (before TLS encryption).", m.bytes_out);
  one(out, "tao_protocol_errors_total", "counter",
      "Connections closed for a malformed frame, a failed decode, a bad heartbeat or a truncated "
      "frame.",
      m.protocol_errors);
  one(out, "tao_heartbeat_timeouts_total", "counter",
      "Connections closed because the peer was silent longer than the heartbeat timeout.",
      m.heartbeat_timeouts);
  one(out, "tao_worker_queue_depth", "gauge",
      "Work waiting for a worker thread (the messages of one read count once).",
      m.worker_queue_depth);
  one(out, "tao_worker_backlog_bytes", "gauge",
      "Message bytes handed to worker threads whose handlers have not finished.",
      m.worker_backlog_bytes);
  one(out, "tao_queued_out_bytes", "gauge", "Bytes accepted by write() and not yet sent.",
      m.queued_out_bytes);
  one(out, "tao_timers_active", "gauge", "Pending timers on the event loops.", m.timers_active);

  const char* h = "tao_handler_seconds";
  fmt::format_to(std::back_inserter(out),
                 "# HELP {0} Run time of message handlers.\n# TYPE {0} histogram\n", h);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < handler_seconds_bounds.size(); ++i) {
    cumulative += m.handler_seconds.counts[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", h,
                   handler_seconds_bounds[i], cumulative);
  }
  cumulative += m.handler_seconds.counts.back();
  fmt::format_to(std::back_inserter(out),
                 "{0}_bucket{{le=\"+Inf\"}} {1}\n{0}_sum {2}\n{0}_count {1}\n", h, cumulative,
                 m.handler_seconds.sum_seconds);
  return out;
}

} // namespace tao
