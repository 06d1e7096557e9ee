// Issue 11: file descriptor exhaustion. The soft RLIMIT_NOFILE is lowered to a little above what
// the process uses and the rest is filled, so the server's accept() fails with EMFILE (and so does
// its metrics endpoint's): each must log it once (not once per retry), back off (not spin), keep
// serving its existing connections and accept again once descriptors are free. The limit is
// restored at the end (ctest runs this test in a process of its own anyway).
#include <fcntl.h>
#include <sys/resource.h>

#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "reliability.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

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
  test::CapturedLog log; // what tao logs, so the test can check the exhaustion was reported
  RestoreLimit restore;

  auto o = test::local_server(1, 1);
  o.metrics.http = tao::MetricsHttpOptions{}; // its acceptor must back off as well
  tao::Server server(o);
  server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
  server.start();
  std::vector<std::unique_ptr<RawPeer>> existing;
  for (int i = 0; i < 3; ++i) {
    existing.push_back(std::make_unique<RawPeer>(server.port()));
    ASSERT_TRUE(echoes(*existing.back(), "before"));
  }

  // Two clients' sockets, made now: with both acceptors' descriptors gone, connecting one client
  // could otherwise let an acceptor take the descriptor freed for the other.
  RawPeer::Socket newcomer_socket, scraper_socket;
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
  // The kernel completes the handshakes; neither the server nor its metrics endpoint can accept.
  RawPeer newcomer(newcomer_socket, server.port());
  ASSERT_TRUE(newcomer.send(test::frame(Text::type, "waiting")));
  RawPeer scraper(scraper_socket, server.metrics_port());
  ASSERT_TRUE(scraper.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));

  EXPECT_TRUE(test::eventually([&] { return log.count("retrying every 100 ms") >= 2; }, 10s))
      << "the exhaustion was not logged by both acceptors:\n"
      << log.text();
  EXPECT_EQ(log.count("metrics endpoint: accept: "), 1u);
  // Existing connections keep being served meanwhile.
  for (auto& p : existing)
    EXPECT_TRUE(echoes(*p, "during"));
  EXPECT_EQ(server.connection_count(), 3u);
  // Backing off, not spinning (the process stays nearly idle), and not flooding the log: the
  // episode was reported once; the next report would come 10 s later.
  const double cpu_before = process_cpu_seconds();
  std::this_thread::sleep_for(500ms);
  const double cpu = process_cpu_seconds() - cpu_before;
  EXPECT_LT(cpu, 0.2) << "the process used " << cpu
                      << " s of CPU in 0.5 s while it could not accept";
  EXPECT_EQ(log.count("retrying every 100 ms"), 2u);
  EXPECT_EQ(log.count("accept still failing"), 0u);
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
  const auto status = scraper.read_exact(12, 10s);
  ASSERT_TRUE(status) << "the metrics endpoint did not recover";
  EXPECT_EQ(*status, "HTTP/1.1 200");
  EXPECT_TRUE(test::eventually([&] { return log.count("accepting again after") == 2; }))
      << "the recovery was not logged by both acceptors:\n"
      << log.text();
  server.stop();
}

} // namespace
