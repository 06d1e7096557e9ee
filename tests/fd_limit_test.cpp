// Issue 11: file descriptor exhaustion. The soft RLIMIT_NOFILE is lowered to a little above what
// the process uses and the rest is filled, so the server's accept() fails with EMFILE: the server
// must log it once (not once per retry), back off (not spin), keep serving its existing connections
// and accept again once descriptors are free. The limit is restored at the end (ctest runs this
// test in a process of its own anyway).
#include <fcntl.h>
#include <sys/resource.h>

#include <mutex>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>

#include "reliability.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

/// Keeps what tao logs, so the test can check that the exhaustion was reported.
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
public:
  std::vector<std::string> lines() {
    std::lock_guard lock(this->mutex_);
    return lines_;
  }
  std::size_t count(const std::string& needle) {
    std::size_t n = 0;
    for (const auto& l : lines())
      n += l.find(needle) != std::string::npos;
    return n;
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines_.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush_() override {}

private:
  std::vector<std::string> lines_;
};

struct RestoreLimit {
  rlimit saved{};
  RestoreLimit() { ::getrlimit(RLIMIT_NOFILE, &saved); }
  ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

/// CPU time (user + system) this process has used so far.
double process_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

bool echoes(RawPeer& p, const std::string& text) {
  if (!p.send(test::frame(Text::type, text))) return false;
  auto f = p.read_frame(10s);
  return f && f->first == Text::type && f->second == text;
}

TEST(FdExhaustion, ServerBacksOffLogsKeepsServingAndRecovers) {
  auto sink = std::make_shared<CaptureSink>();
  auto previous = tao::logger();
  tao::set_logger(std::make_shared<spdlog::logger>("tao", sink));
  RestoreLimit restore;

  tao::Server server(test::local_server(1, 1));
  server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
  server.start();
  std::vector<std::unique_ptr<RawPeer>> existing;
  for (int i = 0; i < 3; ++i) {
    existing.push_back(std::make_unique<RawPeer>(server.port()));
    ASSERT_TRUE(echoes(*existing.back(), "before"));
  }

  // Lower the limit to a little above what is open, then take every descriptor left.
  rlimit low = restore.saved;
  low.rlim_cur = static_cast<rlim_t>(test::open_fds() + 32);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0) << std::strerror(errno);
  std::vector<int> filler;
  while (true) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      ASSERT_EQ(errno, EMFILE);
      break;
    }
    filler.push_back(fd);
  }
  ASSERT_FALSE(filler.empty());
  // One descriptor for the new client's socket; none is left for the server's accept().
  ::close(filler.back());
  filler.pop_back();
  RawPeer newcomer(server.port()); // the kernel completes the handshake; the server cannot accept
  ASSERT_TRUE(newcomer.send(test::frame(Text::type, "waiting")));

  EXPECT_TRUE(test::eventually([&] { return sink->count("retrying every 100 ms") >= 1; }, 10s))
      << "the exhaustion was not logged";
  // Existing connections keep being served meanwhile.
  for (auto& p : existing)
    EXPECT_TRUE(echoes(*p, "during"));
  EXPECT_EQ(server.connection_count(), 3u);
  // Backing off, not spinning (the process stays nearly idle), and not flooding the log: the
  // episode was reported once; the next report would come 10 s later.
  const double cpu_before = process_cpu_seconds();
  std::this_thread::sleep_for(500ms);
  const double cpu = process_cpu_seconds() - cpu_before;
  EXPECT_LT(cpu, 0.2) << "the server used " << cpu
                      << " s of CPU in 0.5 s while it could not accept";
  EXPECT_EQ(sink->count("retrying every 100 ms"), 1u);
  EXPECT_EQ(sink->count("accept still failing"), 0u);
  EXPECT_FALSE(newcomer.read_frame(100ms)) << "served without a descriptor?";

  // Descriptors free up: the waiting client is accepted and served, and so are new ones.
  for (int fd : filler)
    ::close(fd);
  filler.clear();
  auto f = newcomer.read_frame(10s);
  ASSERT_TRUE(f) << "the server did not recover";
  EXPECT_EQ(f->second, "waiting");
  RawPeer later(server.port());
  EXPECT_TRUE(echoes(later, "after"));
  for (auto& p : existing)
    EXPECT_TRUE(echoes(*p, "after"));
  EXPECT_EQ(server.connection_count(), 5u);
  EXPECT_EQ(sink->count("accepting again after"), 1u) << "the recovery was not logged";
  server.stop();
  tao::set_logger(previous);
}

} // namespace
