// Options of servers, clients and their connections: aggregates with visible defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include <tao/codec.hpp>
#include <tao/metrics.hpp>
#include <tao/tls.hpp>

namespace tao {

using namespace std::chrono_literals;

/// Means "one per hardware thread" for io_threads and workers.
inline constexpr std::size_t hardware_threads = std::numeric_limits<std::size_t>::max();

/// Per-connection bounds: memory and flow control.
struct ConnectionOptions {
  /// write() refuses (errc::send_queue_full) while this many bytes are queued for the peer; the
  /// write that crosses it is accepted whole, so queued bytes stay under this plus one frame.
  std::size_t send_high_water = 4u << 20;
  /// Reading stops while this many bytes are queued (the peer is slowed by TCP) ...
  std::size_t pause_reading_at = 1u << 20;
  /// ... and starts again when the queue drains to this.
  std::size_t resume_reading_at = 256u << 10;
  /// Close a connection whose send queue is full (a peer that does not read).
  bool close_when_send_queue_full = false;
  /// Messages of one connection waiting for the worker pool before reading stops; reading starts
  /// again when half of them have run.
  std::size_t max_pending_messages = 256;
  /// Bytes of messages that one event loop has handed to the workers and whose handlers have not
  /// finished (each message counts its payload plus 64 bytes for its bookkeeping), shared evenly
  /// by the workers: when the loop's share for one worker is reached, the loop stops reading the
  /// connections that worker serves (the peers are slowed by TCP, the bytes wait in the kernel),
  /// and they read again in the order they stopped once it is down to half its share. The frame
  /// that crosses it is handled. A slow or stuck worker stops only its own connections. Bounds
  /// the memory of queued messages when many peers send at once, so the heap does not grow with
  /// the load (on a 1,000-connection burst that growth cost more than the bound, measured; see
  /// the README). 0 = no bound (max_pending_messages still bounds each connection).
  std::size_t max_worker_backlog = 4u << 20;
  /// The deadline of a graceful close (or a stop), from its start: sending what was accepted,
  /// then (over TLS) the close_notify exchange, then waiting until the peer has acknowledged
  /// everything or closed. A connection still closing then is closed anyway (on_error reports
  /// close_timeout when bytes may be lost).
  std::chrono::milliseconds close_timeout = 5s;
};

/// Application-level heartbeat (type 0 frames, int64 LE nanoseconds since the Unix epoch).
/// Checked by one timer per event loop that sweeps its connections every
/// min(interval, timeout) / 4 (at least 1 ms, at most 1 s), not by a timer per connection.
struct HeartbeatOptions {
  /// Send a heartbeat when nothing else was sent for this long; 0 = never.
  std::chrono::milliseconds interval{0};
  /// Close a connection from which no complete frame arrived for this long, with
  /// errc::heartbeat_timeout; 0 = never. Life is counted in whole frames, so a peer that sends
  /// half a frame and stalls (or trickles one byte at a time) is closed too. While tao itself has
  /// stopped reading a connection (backpressure) the clock does not run against the peer.
  std::chrono::milliseconds timeout{0};
};

/// Everything a Server is configured with; the defaults are written next to each field.
/// Thread safety: a plain value; copied into the server at construction.
struct ServerOptions {
  /// Address to listen on: "0.0.0.0" (IPv4), "::" (IPv6 and IPv4), "127.0.0.1", "localhost", ...
  std::string host = "0.0.0.0";
  /// 0 picks a free port; Server::port() tells which.
  std::uint16_t port = 12345;
  /// Event loops, one thread each.
  std::size_t io_threads = hardware_threads;
  /// Worker threads for handlers; 0 = handlers run on the I/O loops.
  std::size_t workers = hardware_threads;
  /// Connections beyond this are refused (closed at once, counted, logged); 0 = no limit.
  std::size_t max_connections = 0;
  /// Maximum frame payload for the default codec (Go Tao: 8 MiB).
  std::size_t max_payload = TlvCodec::default_max_payload;
  /// A custom codec; null = TlvCodec(max_payload).
  std::shared_ptr<const Codec> codec{};
  /// Per-connection bounds (queues, flow control, close deadline).
  ConnectionOptions connection{};
  /// Bytes read per system call into each loop's shared read buffer. A peer whose pipelined
  /// window is a little larger costs two reads and two sends per window: 128 KiB, not 64, because
  /// 16 frames of 4 KiB (65,664 bytes with their headers) are a common window.
  std::size_t read_chunk = 128u << 10;
  /// listen() backlog.
  int backlog = 1024;
  /// Servers close peers silent for 60 s by default and send no heartbeats of their own.
  /// A Go Tao client sends no heartbeats: set timeout to 0 if such clients stay idle longer.
  HeartbeatOptions heartbeat{.interval = std::chrono::milliseconds(0), .timeout = 60s};
  /// Answer every heartbeat with one (carrying the server's clock), so clients can detect a
  /// dead server with their own timeout.
  bool heartbeat_reply = true;
  /// Serve TLS instead of plain TCP (certificate and key required).
  std::optional<TlsOptions> tls{};
  /// Sets the level of the "tao" logger (which is process-wide) when the server is constructed:
  /// "trace", "debug", "info", "warn", "error", "critical" or "off"; empty = leave it as it is
  /// (TAO_LOG_LEVEL, else info). An unknown name throws std::invalid_argument.
  std::string log_level{};
  /// Handler timing and the optional HTTP endpoint (GET /metrics, off by default).
  MetricsOptions metrics{};
  /// glibc only: raises malloc's trim threshold to this many bytes, and its mmap threshold to half
  /// of it (at least 128 KiB, at most 32 MiB), so freed memory is kept for reuse instead of being
  /// returned to the kernel and faulted in again. Process-wide and once: the first Server or
  /// Client constructed with a non-zero value sets them; later values are ignored. Handlers on
  /// workers need it: their messages are allocated on a loop and freed on a worker in batches,
  /// and glibc's default (128 KiB, adjusted at run time) then trims and regrows a heap for nearly
  /// every message (measured: 4 KiB messages with one worker, up to 6x fewer messages/s). Each
  /// malloc arena may keep up to this much free memory. To leave glibc's settings alone, give 0 to
  /// every Server and Client of the process, or set the thresholds in the environment (a trim
  /// threshold there, GLIBC_TUNABLES's glibc.malloc.trim_threshold or MALLOC_TRIM_THRESHOLD_,
  /// leaves both alone; an mmap threshold there, its own).
  std::size_t malloc_trim_threshold = 16u << 20;
};

/// Client reconnection: exponential backoff with full jitter. Attempt k waits a uniformly random
/// time in [0, min(max_delay, initial_delay * multiplier^(k-1))]. A deliberate close() or stop()
/// never reconnects, and a failed attempt never ends the process.
struct ReconnectOptions {
  /// The bound of the first attempt's delay.
  std::chrono::milliseconds initial_delay{100};
  /// The largest bound; also how long a connection must last for the backoff to start over.
  std::chrono::milliseconds max_delay{30000};
  /// Growth of the bound per attempt.
  double multiplier = 2.0;
  /// Attempts after a loss before giving up (logged, on_error is not involved); 0 = forever.
  std::size_t max_attempts = 0;
  /// While disconnected, write() queues up to this many bytes (then send_queue_full) and they are
  /// sent first, in order, on the next connection; 0 = write() answers not_connected.
  std::size_t queue_bytes = 0;
};

/// Everything a Client is configured with; the defaults are written next to each field.
/// Thread safety: a plain value; copied into the client at construction.
struct ClientOptions {
  /// The server's address or name (resolved at connect time).
  std::string host = "127.0.0.1";
  /// The server's port.
  std::uint16_t port = 12345;
  /// A connect (name resolution included) that takes longer fails with errc::connect_timeout.
  std::chrono::milliseconds connect_timeout = 5s;
  /// Event loops, one thread each (one connection needs one).
  std::size_t io_threads = 1;
  /// Worker threads for handlers; 0 (the default for clients) = handlers run on the I/O loop.
  std::size_t workers = 0;
  /// Maximum frame payload for the default codec.
  std::size_t max_payload = TlvCodec::default_max_payload;
  /// A custom codec; null = TlvCodec(max_payload). Must match the server's.
  std::shared_ptr<const Codec> codec{};
  /// Per-connection bounds (queues, flow control, close deadline).
  ConnectionOptions connection{};
  /// Bytes read per system call (at least 512: the constructor throws std::invalid_argument).
  std::size_t read_chunk = 128u << 10;
  /// Clients send a heartbeat after 15 s without sending anything (well inside a tao server's
  /// default 60 s timeout). Their own timeout is off by default, because a Go Tao server never
  /// answers heartbeats; against a tao server (which answers) set it, e.g. to 45 s, to detect a
  /// dead server or a half-open connection.
  HeartbeatOptions heartbeat{.interval = 15s, .timeout = std::chrono::milliseconds(0)};
  /// Connect with TLS (the server's certificate is verified against tls->ca unless told not to).
  std::optional<TlsOptions> tls{};
  /// Reconnect when the connection is lost (or the first connect fails); none = never.
  std::optional<ReconnectOptions> reconnect{};
  /// As ServerOptions::log_level.
  std::string log_level{};
  /// As ServerOptions::metrics; the endpoint starts with the first connect().
  MetricsOptions metrics{};
  /// As ServerOptions::malloc_trim_threshold.
  std::size_t malloc_trim_threshold = 16u << 20;
};

} // namespace tao
