// Test helpers: a raw blocking TCP peer (POSIX sockets, so tests can send any bytes), frame
// builders, waiting with a deadline, and a recorder of on_error reports.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/base_sink.h>

#include <tao/tao.hpp>

namespace test {

using namespace std::chrono_literals;

/// True in the sanitizer builds (ASan, TSan), which run several times slower.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool under_sanitizer = true;
#else
inline constexpr bool under_sanitizer = false;
#endif

/// Polls `cond` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return cond();
}

/// Threads of this process now (Linux: /proc/self/task).
inline int thread_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

/// One TLV frame: int32 LE type | uint32 LE length | payload.
inline std::string frame(std::int32_t type, std::string_view payload) {
  tao::Buffer b;
  b.append_le<std::int32_t>(type);
  b.append_le<std::uint32_t>(static_cast<std::uint32_t>(payload.size()));
  b.append(payload);
  return b.str();
}

inline std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

/// A listening socket on 127.0.0.1 (ephemeral port) that the test accepts from by hand, or
/// never: a peer that connects fine and then says nothing.
class RawListener {
public:
  explicit RawListener(int backlog = 16) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, backlog) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error(std::string("listener: ") + std::strerror(errno));
    port_ = ntohs(a.sin_port);
  }
  ~RawListener() { ::close(fd_); }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;
  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }

private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// A blocking TCP client on 127.0.0.1 that sends and reads raw bytes.
class RawPeer {
public:
  /// A socket made ahead of its connect: for a test that runs the process out of descriptors
  /// and then connects.
  struct Socket {
    Socket() : fd(::socket(AF_INET, SOCK_STREAM, 0)) {
      if (fd < 0) throw std::runtime_error("socket");
    }
    int fd;
  };

  explicit RawPeer(std::uint16_t port, bool nodelay = true) : RawPeer(Socket(), port, nodelay) {}
  /// Connects (and owns) a socket made earlier.
  RawPeer(Socket socket, std::uint16_t port, bool nodelay = true) : fd_(socket.fd) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    int one = nodelay ? 1 : 0;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawPeer() { close(); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  int fd() const { return fd_; }
  std::uint16_t local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// Closes with RST (SO_LINGER 0).
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void set_receive_buffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads exactly n bytes; empty optional on EOF, error or timeout.
  std::optional<std::string> read_exact(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    std::string out;
    out.resize(n);
    std::size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r <= 0) return std::nullopt;
      got += static_cast<std::size_t>(r);
    }
    return out;
  }

  /// Reads one TLV frame: {type, payload}.
  std::optional<std::pair<std::int32_t, std::string>>
  read_frame(std::chrono::milliseconds timeout = 5s) {
    auto h = read_exact(8, timeout);
    if (!h) return std::nullopt;
    tao::ByteView v(*h);
    auto type = v.read_le<std::int32_t>(0);
    auto len = v.read_le<std::uint32_t>(4);
    if (len == 0) return std::pair{type, std::string()};
    auto p = read_exact(len, timeout);
    if (!p) return std::nullopt;
    return std::pair{type, *p};
  }

  /// True when the server closed the connection (EOF or reset) within `timeout`; data that
  /// arrives first is discarded.
  bool closed_by_peer(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return true;
    }
    return false;
  }

private:
  int fd_ = -1;
};

/// What a server (or client) reported to on_error, kept under a lock: the callback runs on the
/// loops or the workers while the test reads. Declare it before the server that reports to it,
/// so the server is destroyed, and stopped, first.
///   test::ErrorLog errors;  tao::Server server(...);  server.on_error(errors.recorder());
class ErrorLog {
public:
  /// The on_error callback that records into this log.
  auto recorder() {
    return [this](tao::Connection&, const tao::Error& e) {
      std::lock_guard l(mutex_);
      errors_.push_back(e);
    };
  }
  /// True when an error with this code was recorded.
  bool has(tao::errc code) const {
    std::lock_guard l(mutex_);
    for (const auto& e : errors_)
      if (e.code == code) return true;
    return false;
  }
  bool empty() const {
    std::lock_guard l(mutex_);
    return errors_.empty();
  }
  /// A copy of what was recorded so far, in order.
  std::vector<tao::Error> all() const {
    std::lock_guard l(mutex_);
    return errors_;
  }

private:
  mutable std::mutex mutex_;
  std::vector<tao::Error> errors_;
};

/// What on_close saw: each closed connection's close_reason(), in order, kept under a lock (the
/// callback runs on the loops). Declare it before the server that reports to it.
///   test::CloseLog closes;  tao::Server server(...);  server.on_close(closes.recorder());
class CloseLog {
public:
  /// The on_close callback that records into this log.
  auto recorder() {
    return [this](tao::Connection& c) {
      std::lock_guard l(mutex_);
      reasons_.push_back(c.close_reason());
    };
  }
  /// Connections closed so far.
  std::size_t count() const {
    std::lock_guard l(mutex_);
    return reasons_.size();
  }
  /// The close reason of the i-th connection that closed (an empty error_code if none yet).
  std::error_code reason(std::size_t i) const {
    std::lock_guard l(mutex_);
    return i < reasons_.size() ? reasons_[i] : std::error_code{};
  }

private:
  mutable std::mutex mutex_;
  std::vector<std::error_code> reasons_;
};

/// Installs a "tao" logger that keeps every line, formatted "<level> <message>", for its own
/// lifetime, then puts the previous logger back. Declare it before the servers whose logs it
/// keeps.
class CapturedLog {
public:
  CapturedLog() : sink_(std::make_shared<Sink>()), previous_(tao::logger()) {
    sink_->set_pattern("%l %v");
    tao::set_logger(std::make_shared<spdlog::logger>("tao", sink_));
  }
  ~CapturedLog() { tao::set_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  /// Everything logged so far, one line per message.
  std::string text() { return sink_->text(); }
  /// Lines that contain `needle`.
  std::size_t count(std::string_view needle) {
    const std::string all = text();
    std::size_t n = 0, at = 0;
    while (at < all.size()) {
      std::size_t end = all.find('\n', at);
      if (end == std::string::npos) end = all.size();
      n += std::string_view(all).substr(at, end - at).find(needle) != std::string_view::npos;
      at = end + 1;
    }
    return n;
  }

private:
  class Sink : public spdlog::sinks::base_sink<std::mutex> {
  public:
    std::string text() {
      std::lock_guard lock(this->mutex_);
      return text_;
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      spdlog::memory_buf_t buf;
      this->formatter_->format(msg, buf);
      text_.append(buf.data(), buf.size());
    }
    void flush_() override {}

  private:
    std::string text_; // guarded by mutex_
  };
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

/// The text message used across tests (type 1, like Go Tao's echo and chat).
struct Text {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Text decode(tao::ByteView in) { return {in.str()}; }
};

/// A numbered message (type 2): int32 sender | int64 sequence number.
struct Seq {
  static constexpr tao::MessageType type = 2;
  std::int32_t sender = 0;
  std::int64_t n = 0;
  void encode(tao::Buffer& out) const {
    out.append_le(sender);
    out.append_le(n);
  }
  static std::optional<Seq> decode(tao::ByteView in) {
    if (in.size() != 12) return std::nullopt;
    return Seq{in.read_le<std::int32_t>(0), in.read_le<std::int64_t>(4)};
  }
};

/// Server options for tests: ephemeral port on 127.0.0.1, small thread counts.
inline tao::ServerOptions local_server(std::size_t workers = 0, std::size_t io_threads = 2) {
  tao::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.io_threads = io_threads;
  o.workers = workers;
  return o;
}

inline tao::ClientOptions local_client(std::uint16_t port) {
  tao::ClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  return o;
}

} // namespace test
