// accept() failing because the process or the system ran out of descriptors or memory: the
// acceptor must wait and retry (the connection stays in the listen backlog and makes the socket
// readable again at once, so retrying at once spins) and must not log once per retry.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include <tao/log.hpp>

namespace tao::detail {

/// How long an acceptor waits after such a failure before it tries again.
inline constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

/// True for the accept() errors that waiting may cure (EMFILE, ENFILE, ENOBUFS, ENOMEM).
inline bool accept_exhausted(const boost::system::error_code& ec) {
  namespace error = boost::asio::error;
  return ec == error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == error::no_buffer_space || ec == error::no_memory;
}

/// Rate limit for a log line that a flood could repeat: due() is true the first time and then at
/// most once per interval. Not thread-safe: one owner thread.
class LogEvery {
public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto default_interval = std::chrono::seconds(10);
  explicit LogEvery(Clock::duration interval = default_interval) : interval_(interval) {}
  /// True when a line may be logged now (and then counts it as logged).
  bool due(Clock::time_point now = Clock::now()) {
    if (logged_once_ && now - last_ < interval_) return false;
    logged_once_ = true;
    last_ = now;
    return true;
  }
  /// Forgets the last line: the next due() is true.
  void reset() { logged_once_ = false; }

private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool logged_once_ = false;
};

/// One acceptor's episodes of accept_exhausted() failures (used on the acceptor's thread only):
/// warns when an episode starts, at most every 10 s (LogEvery) while it lasts (with the retry
/// count), and at info when accepting works again.
class AcceptTrouble {
public:
  /// Names the acceptor in the log: "server 127.0.0.1:7000".
  std::string who;

  /// accept() failed with an accept_exhausted() error; the caller retries after
  /// accept_retry_delay.
  void failed(const boost::system::error_code& ec) {
    const auto now = Clock::now();
    if (retries_++ == 0) {
      since_ = now;
      log_every_.reset();
      log_every_.due(now);
      logger()->warn("{}: accept: {}; retrying every {} ms (existing connections are still "
                     "served)",
                     who, ec.message(), accept_retry_delay.count());
    } else if (log_every_.due(now)) {
      logger()->warn("{}: accept still failing after {} ms ({} retries): {}", who, ms_since(now),
                     retries_, ec.message());
    }
  }
  /// accept() worked: ends the episode, if one was going on.
  void succeeded() {
    if (retries_ == 0) return;
    logger()->info("{}: accepting again after {} ms ({} retries)", who, ms_since(Clock::now()),
                   retries_);
    retries_ = 0;
  }

private:
  using Clock = std::chrono::steady_clock;
  long long ms_since(Clock::time_point now) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - since_).count();
  }
  std::uint64_t retries_ = 0;
  Clock::time_point since_{};
  LogEvery log_every_;
};

} // namespace tao::detail
