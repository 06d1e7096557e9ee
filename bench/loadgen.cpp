// tao-loadgen: drives a TLV echo (or chat) server and prints one line of key=value pairs per run.
//
// It is built on raw epoll in a single thread, not on tao, so it cannot hide tao's costs, and it
// spends little per message because on a 2-core machine its one core is often the bottleneck.
// It polls edge-triggered. Level-triggered, epoll re-queues every connection it reports at the
// tail of its ready list, so once this one core is saturated the order in which it serves its
// connections persists from pass to pass and the ones served late stay late: the server under test
// then looks uneven (a p99 far above its median) for a reason that is the load generator's.
// Independent real clients share no ready list. Edge-triggered, a connection is reported once per
// arrival of new bytes, which on_readable reads until a short read (the queue was empty then; any
// later bytes bring a new edge). A FIN or reset queued behind the bytes stops a read short too,
// with no later edge, so the peer's hang-up is watched (EPOLLRDHUP) and then read to the end.
//
// Modes:
//   pingpong   N connections, K frames in flight each (pipelined), payload S: messages/s, MiB/s,
//              round-trip latency per message, server CPU time per message (the load starts
//              once every connection has had one echo, i.e. once the server accepted them all)
//   memory     N connections that each exchanged one frame, then stay idle: server RSS growth
//   accept     N connectors that each loop on connect, one echo, close: connections/s
//   broadcast  N connections to a chat server; connection 0 sends with K in flight, everyone
//              (the sender too) receives each frame: deliveries/s
//
// Every received byte is compared with what was sent (frames.hpp); a mismatch, a lost frame, a
// closed connection or a stall makes the run fail (status=fail, exit code 1).
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frames.hpp"
#include "histogram.hpp"
#include "proc_stats.hpp"

namespace {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t seconds_to_ns(double s) { return static_cast<std::uint64_t>(s * 1e9); }

std::int64_t own_cpu_ns() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](timeval tv) { return std::int64_t{tv.tv_sec} * 1'000'000'000 + tv.tv_usec * 1000; };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

struct Options {
  std::string mode = "pingpong";
  std::string host = "127.0.0.1";
  std::uint16_t port = 12345;
  std::size_t connections = 1;
  std::size_t inflight = 1;
  std::uint32_t size = 16;
  double duration = 2.0;
  double warmup = 0.5;
  int server_pid = 0;
  double timeout = 5.0;
  std::size_t connect_batch = 256;
  std::uint64_t count = 0;
  double settle = 0.5;
  std::string label = "-";
};

enum class Mode { pingpong, memory, accept, broadcast };

Mode parse_mode(const std::string& m) {
  if (m == "memory") return Mode::memory;
  if (m == "accept") return Mode::accept;
  if (m == "broadcast") return Mode::broadcast;
  return Mode::pingpong;
}

struct Conn {
  enum class State { idle, connecting, open };
  int fd = -1;
  State state = State::idle;
  std::uint32_t stream = 0; // whose frames arrive here: its own (echo) or the sender's (broadcast)
  bool want_write = false;
  std::vector<char> out;
  std::size_t out_sent = 0;
  std::uint64_t sent = 0;     // frames queued on this connection
  std::uint64_t received = 0; // frames received completely (in broadcast: next expected seq)
  std::size_t pos = 0;        // bytes of the frame being received
  bool frame_bad = false;
  bool synced = true; // broadcast: false until the first frame says where this stream starts
  std::array<char, bench::FrameMaker::kMaxHead> head{}; // expected head of the current frame
  std::vector<char> sync_buf;
  std::uint64_t connect_ns = 0;
  std::uint64_t window_ops = 0;       // frames completed here in the measured window: fairness
  std::vector<std::uint64_t> send_ns; // ring of send times, one per frame in flight
};

class LoadGen {
public:
  explicit LoadGen(const Options& o)
      : o_(o), mode_(parse_mode(o.mode)), maker_(o.size), epoll_(epoll_create1(EPOLL_CLOEXEC)),
        buf_(256 * 1024) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(o.port);
    if (inet_pton(AF_INET, o.host.c_str(), &addr_.sin_addr) != 1)
      throw std::runtime_error("--host must be an IPv4 address: " + o.host);
  }
  ~LoadGen() {
    for (auto& c : conns_)
      if (c.fd >= 0) ::close(c.fd);
    ::close(epoll_);
  }

  int run() {
    switch (mode_) {
    case Mode::pingpong: return pingpong();
    case Mode::memory: return memory();
    case Mode::accept: return accept_rate();
    case Mode::broadcast: return broadcast();
    }
    return 2;
  }

private:
  // ---- phases -------------------------------------------------------------------------------

  int pingpong() {
    conns_.resize(o_.connections);
    const auto t0 = now_ns();
    if (!connect_all(0, conns_.size()) || !first_echoes()) return report();
    ready_ns_ = now_ns() - t0;
    sending_ = true;
    now_ = now_ns();
    for (auto& c : conns_) {
      while (c.sent - c.received < o_.inflight)
        queue_echo(c);
      flush(c);
    }
    timed_window();
    sending_ = false;
    run_until(now_ + seconds_to_ns(o_.timeout), [&] { return outstanding() == 0; });
    for (auto& c : conns_)
      lost_ += c.sent - c.received;
    return report();
  }

  // connect() returns once the kernel completed the handshake, maybe long before the server
  // accepted the connection. One echo per connection first, so the load starts with every
  // connection served, not with whatever the server accepted so far.
  bool first_echoes() {
    now_ = now_ns();
    for (auto& c : conns_) {
      queue_echo(c);
      flush(c);
    }
    return run_until(now_ns() + seconds_to_ns(o_.timeout),
                     [&] {
                       return std::all_of(conns_.begin(), conns_.end(),
                                          [](const Conn& c) { return c.received == 1; });
                     }) ||
           fail("first echoes timed out");
  }

  int memory() {
    // One connection first, so what the server allocates once (loop buffers, arenas) is in the
    // "before" figure and only per-connection memory is in the difference.
    conns_.resize(o_.connections + 1);
    if (!connect_all(0, 1) || !wait_echoes(1)) return report();
    settle();
    rss_before_ = bench::process_rss_kib(o_.server_pid);
    if (!connect_all(1, conns_.size()) || !wait_echoes(conns_.size())) return report();
    settle();
    rss_after_ = bench::process_rss_kib(o_.server_pid);
    for (auto& c : conns_)
      if (c.state != Conn::State::open) ++errors_;
    return report();
  }

  int accept_rate() {
    conns_.resize(o_.connections);
    sending_ = true;
    now_ = now_ns();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].stream = static_cast<std::uint32_t>(i);
      start_connect(conns_[i]);
    }
    timed_window();
    sending_ = false;
    run_until(now_ + seconds_to_ns(o_.timeout), [&] {
      return std::none_of(conns_.begin(), conns_.end(),
                          [](const Conn& c) { return c.state != Conn::State::idle; });
    });
    for (auto& c : conns_)
      if (c.state != Conn::State::idle) ++lost_;
    return report();
  }

  int broadcast() {
    conns_.resize(o_.connections);
    const auto t0 = now_ns();
    if (!connect_all(0, conns_.size()) || !join()) return report();
    ready_ns_ = now_ns() - t0;
    std::fill(delivered_.begin(), delivered_.end(), 0);
    fully_delivered_ = next_seq_;
    counting_deliveries_ = true;
    sending_ = true;
    now_ = now_ns();
    pump_broadcast();
    timed_window();
    sending_ = false;
    run_until(now_ + seconds_to_ns(o_.timeout), [&] { return fully_delivered_ == next_seq_; });
    for (auto& c : conns_)
      lost_ += next_seq_ - c.received;
    return report();
  }

  // A connection is in the chat server's broadcast list only some time after connect() returns.
  // So the sender probes until every connection has seen a frame (each starts its stream at the
  // first one it sees), then waits until everyone has every probe: from then on each frame must
  // reach all N connections.
  bool join() {
    for (auto& c : conns_)
      c.synced = false;
    const auto deadline = now_ns() + seconds_to_ns(o_.timeout);
    std::uint64_t last_probe = 0;
    auto all_synced = [&] {
      return std::all_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.synced; });
    };
    while (!all_synced()) {
      if (now_ >= deadline || failed()) return fail("join timed out");
      if (now_ - last_probe > 20'000'000) {
        last_probe = now_;
        send_broadcast_frame();
        flush(conns_[0]);
      }
      poll(5);
    }
    return run_until(deadline, [&] {
      return std::all_of(conns_.begin(), conns_.end(),
                         [&](const Conn& c) { return c.received == next_seq_; });
    });
  }

  // Warm-up, then the measured window; the server's CPU time is read at both ends of the window.
  void timed_window() {
    const auto measure_at = now_ + seconds_to_ns(o_.warmup);
    run_until(measure_at, [] { return false; });
    begin_window();
    run_until(measure_at + seconds_to_ns(o_.duration),
              [&] { return o_.count > 0 && ops_ >= o_.count; });
    end_window();
  }

  void begin_window() {
    measuring_ = true;
    hist_.reset();
    for (auto& c : conns_)
      c.window_ops = 0;
    ops_ = bytes_ = 0;
    window_start_ = now_ns();
    server_cpu_start_ = o_.server_pid > 0 ? bench::process_cpu_ns(o_.server_pid) : -1;
    own_cpu_start_ = own_cpu_ns();
  }

  void end_window() {
    measuring_ = false;
    window_ns_ = now_ns() - window_start_;
    if (server_cpu_start_ >= 0)
      server_cpu_ns_ = bench::process_cpu_ns(o_.server_pid) - server_cpu_start_;
    own_cpu_ns_ = own_cpu_ns() - own_cpu_start_;
    if (mode_ == Mode::pingpong) report_starved();
  }

  // Connections that completed nothing in the window: what they and their sockets were doing,
  // to tell a server that skipped them from TCP that stalled (zero window, backoff).
  void report_starved() const {
    int shown = 0;
    for (const auto& c : conns_) {
      if (c.window_ops > 0 || c.state != Conn::State::open || shown++ >= 5) continue;
      tcp_info ti{};
      socklen_t len = sizeof ti;
      getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
      int unsent = 0, unread = 0;
      ioctl(c.fd, TIOCOUTQ, &unsent);
      ioctl(c.fd, FIONREAD, &unread);
      sockaddr_in local{};
      socklen_t alen = sizeof local;
      getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &alen);
      std::fprintf(
          stderr,
          "loadgen: connection %zu fd %d state %d ww %d (port %u) completed nothing in the window: "
          "frames "
          "sent %llu received %llu, %zu bytes queued here, kernel: %d unsent %d unread, "
          "cwnd %u unacked %u backoff %u probes %u rto %u us\n",
          static_cast<std::size_t>(&c - conns_.data()), c.fd, static_cast<int>(c.state),
          c.want_write ? 1 : 0, ntohs(local.sin_port), static_cast<unsigned long long>(c.sent),
          static_cast<unsigned long long>(c.received), c.out.size() - c.out_sent, unsent, unread,
          ti.tcpi_snd_cwnd, ti.tcpi_unacked, ti.tcpi_backoff, ti.tcpi_probes, ti.tcpi_rto);
    }
  }

  void settle() {
    run_until(now_ns() + seconds_to_ns(o_.settle), [] { return false; });
  }

  bool wait_echoes(std::size_t n) {
    return run_until(now_ns() + seconds_to_ns(o_.timeout), [&] { return echoed_ >= n; }) ||
           fail("echoes timed out");
  }

  // Polls until done() or the deadline; false on a deadline, a failure or a stall (nothing
  // connected and no frame completed for --timeout seconds).
  template <class Done> bool run_until(std::uint64_t deadline, Done done) {
    now_ = now_ns();
    last_progress_ = now_;
    while (!done()) {
      if (failed()) return false;
      if (now_ >= deadline) return false;
      if (now_ - last_progress_ > seconds_to_ns(o_.timeout)) {
        stalled_ = true;
        return false;
      }
      const auto left_ms = (deadline - now_ + 999'999) / 1'000'000;
      poll(static_cast<int>(std::min<std::uint64_t>(left_ms, 10)));
    }
    return true;
  }

  // ---- connections --------------------------------------------------------------------------

  bool connect_all(std::size_t first, std::size_t last) {
    const auto deadline = now_ns() + seconds_to_ns(o_.timeout) + 1'000'000'000;
    std::size_t next = first;
    auto opened = [&] {
      while (next < last && connecting_ < o_.connect_batch) {
        // Echoes come back on their own stream; broadcast frames all come from connection 0.
        conns_[next].stream = mode_ == Mode::broadcast ? 0 : static_cast<std::uint32_t>(next);
        start_connect(conns_[next++]);
      }
      return next == last && connecting_ == 0;
    };
    if (!run_until(deadline, opened)) return fail("connect timed out");
    return !failed();
  }

  void start_connect(Conn& c) {
    // A fresh state for the slot (accept reuses slots), keeping its stream and ring.
    Conn fresh;
    fresh.stream = c.stream;
    fresh.send_ns = std::move(c.send_ns);
    fresh.send_ns.resize(o_.inflight);
    c = std::move(fresh);
    c.connect_ns = now_;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return connect_failed(c, "socket");
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // tao and the baselines do too
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0 &&
        errno != EINPROGRESS)
      return connect_failed(c, "connect");
    c.state = Conn::State::connecting;
    ++connecting_;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
  }

  void connect_failed(Conn& c, const char* what) {
    if (errors_ < 5) std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
    ++errors_;
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.state = Conn::State::idle;
  }

  void on_connected(Conn& c) {
    --connecting_;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      errno = err;
      return connect_failed(c, "connect");
    }
    c.state = Conn::State::open;
    last_progress_ = now_;
    watch(c, EPOLL_CTL_MOD, EPOLLIN);
    if (mode_ == Mode::memory || mode_ == Mode::accept) {
      queue_echo(c);
      flush(c);
    }
  }

  void close_conn(Conn& c) {
    if (c.state == Conn::State::connecting) --connecting_;
    ::close(c.fd);
    c.fd = -1;
    c.state = Conn::State::idle;
  }

  void watch(Conn& c, int op, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events | EPOLLET | EPOLLRDHUP; // see the top of the file
    ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
    if (epoll_ctl(epoll_, op, c.fd, &ev) != 0) {
      if (errors_ < 5) std::fprintf(stderr, "loadgen: epoll_ctl: %s\n", std::strerror(errno));
      ++errors_;
    }
  }

  void poll(int timeout_ms) {
    const int n = epoll_wait(epoll_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    now_ = now_ns();
    for (int i = 0; i < n; ++i) {
      Conn& c = conns_[events_[i].data.u64];
      const auto ev = events_[i].events;
      if (c.state == Conn::State::connecting) {
        on_connected(c);
        continue;
      }
      if (c.state != Conn::State::open) continue;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(c, (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
      if (c.state == Conn::State::open && (ev & EPOLLOUT)) flush(c);
    }
    if (mode_ == Mode::broadcast) pump_broadcast();
  }

  // hangup: the peer closed or reset, so read until recv says so (a short read is not the end).
  void on_readable(Conn& c, bool hangup) {
    for (;;) {
      const auto n = ::recv(c.fd, buf_.data(), buf_.size(), 0);
      if (n > 0) {
        now_ = now_ns();
        consume(c, buf_.data(), static_cast<std::size_t>(n));
        if (c.state != Conn::State::open) return;
        if (!hangup && static_cast<std::size_t>(n) < buf_.size()) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (errors_ < 5)
        std::fprintf(stderr, "loadgen: connection %zu %s\n",
                     static_cast<std::size_t>(&c - conns_.data()),
                     n == 0 ? "closed by the server" : std::strerror(errno));
      ++errors_;
      close_conn(c);
      return;
    }
    if (!c.out.empty()) flush(c);
  }

  void flush(Conn& c) {
    while (c.out_sent < c.out.size()) {
      const auto n =
          ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        if (!c.want_write) watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
        c.want_write = true;
        return;
      }
      ++errors_;
      close_conn(c);
      return;
    }
    c.out.clear();
    c.out_sent = 0;
    if (c.want_write) watch(c, EPOLL_CTL_MOD, EPOLLIN);
    c.want_write = false;
  }

  // ---- frames -------------------------------------------------------------------------------

  void queue_echo(Conn& c) {
    c.send_ns[c.sent % o_.inflight] = now_;
    maker_.append(c.out, c.stream, c.sent++);
  }

  void send_broadcast_frame() {
    bcast_send_ns_[next_seq_ % o_.inflight] = now_;
    maker_.append(conns_[0].out, 0, next_seq_++);
  }

  void pump_broadcast() {
    if (!sending_ || conns_.empty() || conns_[0].state != Conn::State::open) return;
    const bool had_output = !conns_[0].out.empty();
    while (next_seq_ - fully_delivered_ < o_.inflight)
      send_broadcast_frame();
    if (!had_output) flush(conns_[0]);
  }

  // Compares received bytes with the stream this connection should get, frame by frame.
  void consume(Conn& c, const char* p, std::size_t n) {
    if (!c.synced) return sync(c, p, n);
    const auto limit = mode_ == Mode::broadcast ? next_seq_ : c.sent;
    const auto head = maker_.head_size();
    while (n > 0) {
      if (c.received >= limit) { // bytes nobody sent: the server invented or duplicated them
        ++mismatches_;
        ++errors_;
        close_conn(c);
        return;
      }
      if (c.pos == 0) maker_.head(c.received, c.head.data());
      const auto take = std::min(n, maker_.frame_size() - c.pos);
      const auto end = c.pos + take;
      if (c.pos < head) {
        const auto k = std::min(end, head) - c.pos;
        c.frame_bad |= std::memcmp(p, c.head.data() + c.pos, k) != 0;
      }
      if (end > head) {
        const auto from = std::max(c.pos, head);
        c.frame_bad |=
            std::memcmp(p + (from - c.pos), maker_.body(c.stream, c.received) + (from - head),
                        end - from) != 0;
      }
      c.pos = end;
      p += take;
      n -= take;
      if (c.pos == maker_.frame_size()) {
        on_frame(c);
        if (c.state != Conn::State::open) return;
      }
    }
  }

  // A broadcast receiver's first frame tells which sequence number its stream starts at.
  void sync(Conn& c, const char* p, std::size_t n) {
    c.sync_buf.insert(c.sync_buf.end(), p, p + n);
    if (c.sync_buf.size() < maker_.head_size()) return;
    c.received = maker_.seq_of(c.sync_buf.data());
    c.synced = true;
    auto bytes = std::move(c.sync_buf);
    consume(c, bytes.data(), bytes.size());
  }

  void on_frame(Conn& c) {
    const auto seq = c.received++;
    c.pos = 0;
    if (c.frame_bad) {
      if (mismatches_ < 5)
        std::fprintf(stderr, "loadgen: frame %llu on connection %zu differs from what was sent\n",
                     static_cast<unsigned long long>(seq),
                     static_cast<std::size_t>(&c - conns_.data()));
      ++mismatches_;
      c.frame_bad = false;
    }
    last_progress_ = now_;
    const bool is_broadcast = mode_ == Mode::broadcast;
    const auto sent_at = mode_ == Mode::accept ? c.connect_ns
                         : is_broadcast        ? bcast_send_ns_[seq % o_.inflight]
                                               : c.send_ns[seq % o_.inflight];
    if (measuring_) {
      hist_.record(now_ - sent_at);
      ++ops_;
      ++c.window_ops;
      bytes_ += maker_.frame_size();
    }
    if (mode_ == Mode::pingpong) {
      if (sending_) queue_echo(c);
    } else if (mode_ == Mode::memory) {
      ++echoed_;
    } else if (mode_ == Mode::accept) {
      close_conn(c);
      if (sending_) start_connect(c);
    } else if (is_broadcast && counting_deliveries_) {
      // Each receiver gets the frames in order, so frame seq completes only after seq - 1.
      auto& d = delivered_[seq % o_.inflight];
      if (++d == conns_.size()) {
        d = 0;
        ++fully_delivered_;
      }
    }
  }

  std::uint64_t outstanding() const {
    std::uint64_t n = 0;
    for (const auto& c : conns_)
      if (c.state == Conn::State::open) n += c.sent - c.received;
    return n;
  }

  bool fail(const char* why) {
    if (!failure_) failure_ = why;
    return false;
  }
  bool failed() const { return failure_ != nullptr || stalled_; }

  // ---- report -------------------------------------------------------------------------------

  int report() const {
    const bool ok = !failed() && errors_ == 0 && mismatches_ == 0 && lost_ == 0;
    const double secs = static_cast<double>(window_ns_) / 1e9;
    const double rate = secs > 0 ? static_cast<double>(ops_) / secs : 0;
    const double mib = secs > 0 ? static_cast<double>(bytes_) / secs / (1024.0 * 1024.0) : 0;
    auto us = [&](double q) { return static_cast<double>(hist_.quantile(q)) / 1000.0; };
    const double cpu_per_op = server_cpu_ns_ >= 0 && ops_ > 0
                                  ? static_cast<double>(server_cpu_ns_) / static_cast<double>(ops_)
                                  : -1;
    auto pct = [&](std::int64_t ns) {
      return window_ns_ > 0 ? 100.0 * static_cast<double>(ns) / static_cast<double>(window_ns_) : 0;
    };
    const auto unit = mode_ == Mode::accept      ? "conn"
                      : mode_ == Mode::broadcast ? "delivery"
                                                 : "msg";
    std::printf("mode=%s label=%s conns=%zu inflight=%zu size=%u unit=%s window_s=%.3f ops=%llu "
                "ops_per_s=%.0f mib_per_s=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
                "server_cpu_ns_per_op=%.0f server_cpu_pct=%.1f client_cpu_pct=%.1f ready_ms=%.1f",
                o_.mode.c_str(), o_.label.c_str(), o_.connections, o_.inflight, o_.size, unit, secs,
                static_cast<unsigned long long>(ops_), rate, mib, us(0.5), us(0.99), us(0.999),
                static_cast<double>(hist_.max()) / 1000.0, cpu_per_op,
                server_cpu_ns_ >= 0 ? pct(server_cpu_ns_) : -1.0, pct(own_cpu_ns_),
                static_cast<double>(ready_ns_) / 1e6);
    if (mode_ == Mode::pingpong || mode_ == Mode::broadcast) {
      // A server that starves some connections shows it here before it shows in the mean.
      auto [lo, hi] =
          std::minmax_element(conns_.begin(), conns_.end(), [](const Conn& a, const Conn& b) {
            return a.window_ops < b.window_ops;
          });
      std::printf(" conn_ops_min=%llu conn_ops_max=%llu",
                  static_cast<unsigned long long>(lo->window_ops),
                  static_cast<unsigned long long>(hi->window_ops));
    }
    if (mode_ == Mode::memory) {
      const double per_conn = rss_before_ >= 0 && rss_after_ >= 0
                                  ? static_cast<double>(rss_after_ - rss_before_) * 1024.0 /
                                        static_cast<double>(o_.connections)
                                  : -1;
      std::printf(" rss_before_kib=%lld rss_after_kib=%lld rss_per_conn_b=%.0f",
                  static_cast<long long>(rss_before_), static_cast<long long>(rss_after_),
                  per_conn);
    }
    std::printf(" errors=%llu mismatches=%llu lost=%llu stalled=%d status=%s", //
                static_cast<unsigned long long>(errors_),
                static_cast<unsigned long long>(mismatches_),
                static_cast<unsigned long long>(lost_), stalled_ ? 1 : 0, ok ? "ok" : "fail");
    if (failure_) std::printf(" reason=\"%s\"", failure_);
    std::printf("\n");
    return ok ? 0 : 1;
  }

  Options o_;
  Mode mode_;
  bench::FrameMaker maker_;
  int epoll_;
  sockaddr_in addr_{};
  std::vector<char> buf_;
  std::vector<epoll_event> events_ = std::vector<epoll_event>(1024);
  std::vector<Conn> conns_;
  std::uint64_t now_ = now_ns();
  std::uint64_t last_progress_ = now_;
  std::size_t connecting_ = 0;
  bool sending_ = false;
  bool measuring_ = false;

  // broadcast: frames next_seq_ - fully_delivered_ are on their way to someone
  std::uint64_t next_seq_ = 0;
  std::uint64_t fully_delivered_ = 0;
  bool counting_deliveries_ = false; // from the end of join() on
  std::vector<std::size_t> delivered_ = std::vector<std::size_t>(o_.inflight);
  std::vector<std::uint64_t> bcast_send_ns_ = std::vector<std::uint64_t>(o_.inflight);

  bench::Histogram hist_;
  std::uint64_t ops_ = 0, bytes_ = 0, echoed_ = 0;
  std::uint64_t errors_ = 0, mismatches_ = 0, lost_ = 0;
  bool stalled_ = false;
  const char* failure_ = nullptr;
  std::uint64_t window_start_ = 0, window_ns_ = 0;
  std::uint64_t ready_ns_ = 0; // connect to every connection served (pingpong, broadcast)
  std::int64_t server_cpu_start_ = -1, server_cpu_ns_ = -1;
  std::int64_t own_cpu_start_ = 0, own_cpu_ns_ = 0;
  std::int64_t rss_before_ = -1, rss_after_ = -1;
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao-loadgen: load generator for TLV echo and chat servers (raw epoll, not tao)"};
  Options o;
  app.add_option("--mode", o.mode, "pingpong, memory, accept or broadcast")
      ->capture_default_str()
      ->check(CLI::IsMember({"pingpong", "memory", "accept", "broadcast"}));
  app.add_option("--host", o.host, "server IPv4 address")->capture_default_str();
  app.add_option("--port", o.port, "server port")->capture_default_str();
  app.add_option("-c,--connections", o.connections,
                 "connections (accept: connectors working at the same time)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  app.add_option("-k,--inflight", o.inflight, "frames in flight per connection (broadcast: in all)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  app.add_option("-s,--size", o.size, "payload bytes per frame")
      ->capture_default_str()
      ->check(CLI::Range(0u, 8u << 20));
  app.add_option("-d,--duration", o.duration, "measured seconds")->capture_default_str();
  app.add_option("-w,--warmup", o.warmup, "seconds of load before measuring")
      ->capture_default_str();
  app.add_option("--server-pid", o.server_pid, "server process: CPU time and RSS from /proc");
  app.add_option("--timeout", o.timeout, "seconds before a connect, drain or stall fails the run")
      ->capture_default_str();
  app.add_option("--connect-batch", o.connect_batch,
                 "connects in progress at most (stay under the backlog)")
      ->capture_default_str();
  app.add_option("--count", o.count, "stop measuring after this many operations (0 = duration)")
      ->capture_default_str();
  app.add_option("--settle", o.settle, "memory: seconds to wait before reading RSS")
      ->capture_default_str();
  app.add_option("--label", o.label, "copied to the output line (no spaces)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.mode == "broadcast" && o.size < 8) {
    std::fprintf(stderr,
                 "loadgen: broadcast needs --size >= 8 (frames carry their sequence number)\n");
    return 2;
  }
  if (o.mode == "memory" && o.server_pid <= 0) {
    std::fprintf(stderr, "loadgen: memory needs --server-pid\n");
    return 2;
  }
  try {
    return LoadGen(o).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    return 2;
  }
}
