// Logging and metrics: a program's own spdlog sink sees the connection lifecycle at debug and
// nothing per message at info; the counters move with real traffic; the HTTP endpoint answers a
// real GET in Prometheus text format and survives malformed, oversized and silent clients.
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

struct HttpResponse {
  int status = 0; // 0: no status line (the endpoint closed without answering)
  std::map<std::string, std::string> headers;
  std::string body;
};

/// Reads what the peer sends until it closes, `timeout` passes or (if not empty) `needle` arrived.
std::string read_from(RawPeer& p, std::chrono::milliseconds timeout, const std::string& needle) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pf{p.fd(), POLLIN, 0};
    if (::poll(&pf, 1, 20) <= 0) continue;
    ssize_t r = ::recv(p.fd(), buf, sizeof buf, 0);
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
    if (!needle.empty() && out.find(needle) != std::string::npos) break;
  }
  return out;
}

/// Reads what the peer sends until it closes or `timeout` passes.
std::string read_until_close(RawPeer& p, std::chrono::milliseconds timeout = 5s) {
  return read_from(p, timeout, {});
}

/// Reads until `needle` has arrived (true), the peer closes or `timeout` passes (false).
bool read_until_seen(RawPeer& p, const std::string& needle,
                     std::chrono::milliseconds timeout = 5s) {
  return read_from(p, timeout, needle).find(needle) != std::string::npos;
}

HttpResponse parse_response(const std::string& raw) {
  HttpResponse r;
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  std::istringstream head(raw.substr(0, head_end));
  std::string line;
  std::getline(head, line); // status line
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& ch : name)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  r.body = raw.substr(head_end + 4);
  return r;
}

/// Sends raw request bytes on a fresh connection and reads the answer until the endpoint closes.
HttpResponse http_exchange(std::uint16_t port, const std::string& request) {
  RawPeer p(port);
  p.send(request); // may fail half way when the endpoint gives up on a huge request
  return parse_response(read_until_close(p));
}

HttpResponse get_metrics(std::uint16_t port) {
  return http_exchange(port,
                       "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

/// The Prometheus text format, checked line by line: samples keyed by "name{labels}".
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types; // family -> counter/gauge/histogram
  std::vector<std::string> problems;

  double operator[](const std::string& key) const {
    auto it = samples.find(key);
    return it == samples.end() ? -1 : it->second;
  }
};

Exposition parse_prometheus(const std::string& body) {
  Exposition e;
  std::map<std::string, bool> helped;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      std::istringstream w(line.substr(7));
      std::string name, text;
      w >> name;
      std::getline(w, text);
      if (text.empty()) e.problems.push_back("HELP without text: " + line);
      helped[name] = true;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream w(line.substr(7));
      std::string name, type;
      w >> name >> type;
      if (type != "counter" && type != "gauge" && type != "histogram")
        e.problems.push_back("bad TYPE: " + line);
      if (!helped[name]) e.problems.push_back("TYPE before HELP: " + line);
      e.types[name] = type;
      continue;
    }
    if (line[0] == '#') {
      e.problems.push_back("unexpected comment: " + line);
      continue;
    }
    const auto space = line.rfind(' ');
    if (space == std::string::npos) {
      e.problems.push_back("no value: " + line);
      continue;
    }
    const std::string key = line.substr(0, space);
    std::string family = key.substr(0, key.find('{'));
    if (family.rfind("tao_", 0) != 0) e.problems.push_back("no tao_ prefix: " + line);
    if (!e.types.count(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s(suffix);
        if (family.size() > s.size() && family.ends_with(s) &&
            e.types.count(family.substr(0, family.size() - s.size())))
          family = family.substr(0, family.size() - s.size());
      }
    }
    if (!e.types.count(family)) e.problems.push_back("sample before its TYPE: " + line);
    try {
      std::size_t used = 0;
      const std::string value = line.substr(space + 1);
      e.samples[key] = std::stod(value, &used);
      if (used != value.size()) e.problems.push_back("bad value: " + line);
    } catch (const std::exception&) {
      e.problems.push_back("bad value: " + line);
    }
  }
  return e;
}

Exposition scrape(std::uint16_t port) {
  HttpResponse r = get_metrics(port);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  Exposition e = parse_prometheus(r.body);
  EXPECT_TRUE(e.problems.empty()) << ::testing::PrintToString(e.problems);
  return e;
}

tao::ServerOptions server_with_endpoint(std::size_t workers = 0) {
  tao::ServerOptions o = test::local_server(workers);
  o.metrics.http = tao::MetricsHttpOptions{.read_timeout = 300ms};
  return o;
}

struct EchoServer {
  explicit EchoServer(tao::ServerOptions o) : server(std::move(o)) {
    server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
    server.start();
  }
  tao::Server server;
};

const std::vector<std::string> all_metric_names = {"tao_connections_current",
                                                   "tao_connections_accepted_total",
                                                   "tao_connections_refused_total",
                                                   "tao_connections_closed_total",
                                                   "tao_frames_in_total",
                                                   "tao_frames_out_total",
                                                   "tao_bytes_in_total",
                                                   "tao_bytes_out_total",
                                                   "tao_protocol_errors_total",
                                                   "tao_heartbeat_timeouts_total",
                                                   "tao_worker_queue_depth",
                                                   "tao_worker_backlog_bytes",
                                                   "tao_queued_out_bytes",
                                                   "tao_timers_active",
                                                   "tao_handler_seconds"};

TEST(Metrics, EndpointServesPrometheusTextAndCountersMoveWithTraffic) {
  EchoServer s(server_with_endpoint());
  const std::uint16_t port = s.server.metrics_port();
  ASSERT_NE(port, 0);

  Exposition before = scrape(port);
  for (const auto& name : all_metric_names)
    EXPECT_TRUE(before.types.count(name)) << name;
  EXPECT_EQ(before.types["tao_frames_in_total"], "counter");
  EXPECT_EQ(before.types["tao_connections_current"], "gauge");
  EXPECT_EQ(before.types["tao_handler_seconds"], "histogram");
  EXPECT_EQ(before["tao_connections_accepted_total"], 0);
  EXPECT_EQ(before["tao_frames_in_total"], 0);
  EXPECT_EQ(before["tao_handler_seconds_count"], 0);

  const std::string msg = "hello metrics";
  const double frame_bytes = 8 + msg.size();
  {
    RawPeer peer(s.server.port());
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(peer.send(test::frame(1, msg)));
      auto echo = peer.read_frame();
      ASSERT_TRUE(echo);
      EXPECT_EQ(echo->second, msg);
    }
    Exposition during;
    ASSERT_TRUE(test::eventually([&] {
      during = scrape(port);
      return during["tao_frames_out_total"] == 5;
    }));
    EXPECT_EQ(during["tao_connections_current"], 1);
    EXPECT_EQ(during["tao_connections_accepted_total"], 1);
    EXPECT_EQ(during["tao_connections_closed_total"], 0);
    EXPECT_EQ(during["tao_frames_in_total"], 5);
    EXPECT_EQ(during["tao_bytes_in_total"], 5 * frame_bytes);
    EXPECT_EQ(during["tao_bytes_out_total"], 5 * frame_bytes);
    EXPECT_EQ(during["tao_queued_out_bytes"], 0);
    // The histogram: cumulative buckets, +Inf equal to _count, which counts every handler call.
    EXPECT_EQ(during["tao_handler_seconds_count"], 5);
    EXPECT_EQ(during["tao_handler_seconds_bucket{le=\"+Inf\"}"], 5);
    EXPECT_GT(during["tao_handler_seconds_sum"], 0);
    double last = 0;
    for (double bound : tao::handler_seconds_bounds) {
      std::ostringstream key;
      key << "tao_handler_seconds_bucket{le=\"" << bound << "\"}";
      ASSERT_GE(during[key.str()], last) << key.str();
      last = during[key.str()];
    }
  }
  Exposition after;
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(port);
    return after["tao_connections_closed_total"] == 1;
  }));
  EXPECT_EQ(after["tao_connections_current"], 0);

  // A garbage frame (length far past the maximum payload) is a protocol error.
  RawPeer bad(s.server.port());
  bad.send(std::string("\x01\x00\x00\x00\xff\xff\xff\xff", 8));
  EXPECT_TRUE(bad.closed_by_peer());
  ASSERT_TRUE(test::eventually([&] { return scrape(port)["tao_protocol_errors_total"] == 1; }));
  const Exposition last_scrape = scrape(port);
  EXPECT_EQ(last_scrape["tao_connections_accepted_total"], 2);
  EXPECT_EQ(last_scrape["tao_frames_in_total"], 5); // the bad frame never completed
}

// Loop handlers of frames read at once are timed back to back, one clock read each: every
// handler is still counted once, frames that reach no handler (a heartbeat, an unknown type) are
// not, and a slow handler lands in a slow bucket without making the next one look slow.
TEST(Metrics, LoopHandlersOfOneReadAreEachTimedOnce) {
  tao::Server server(test::local_server(0, 1));
  server.handle<Text>([](tao::Connection& c, const Text& m) {
    if (m.text == "slow") std::this_thread::sleep_for(3ms);
    c.write(m);
  });
  server.start();
  test::RawPeer peer(server.port());
  std::string burst;
  for (int i = 0; i < 30; ++i)
    burst += test::frame(1, "a" + std::to_string(i));
  burst += test::frame(tao::heartbeat_type, std::string(8, '\0'));
  burst += test::frame(99, "nobody handles this type");
  burst += test::frame(1, "slow");
  for (int i = 0; i < 30; ++i)
    burst += test::frame(1, "b" + std::to_string(i));
  ASSERT_TRUE(peer.send(burst));
  int texts = 0;
  while (texts < 61) {
    auto f = peer.read_frame();
    ASSERT_TRUE(f) << "after " << texts << " replies";
    if (f->first == 1) ++texts; // (a heartbeat answer may come too)
  }
  ASSERT_TRUE(test::eventually([&] { return server.metrics().handler_seconds.count == 61; }));
  const tao::HistogramSnapshot h = server.metrics().handler_seconds;
  std::uint64_t over_1ms = 0;
  for (std::size_t i = 0; i < h.counts.size(); ++i)
    if (i >= tao::handler_seconds_bounds.size() || tao::handler_seconds_bounds[i] > 1e-3)
      over_1ms += h.counts[i];
  EXPECT_GE(over_1ms, 1u);  // the slow one
  EXPECT_LE(over_1ms, 10u); // each lap restarts: the 30 after it would all be slow otherwise
  EXPECT_GE(h.sum_seconds, 0.003);
  EXPECT_EQ(h.count, 61u);
}

// Handler laps are read from a cheaper clock than steady_clock where the processor has one (the
// time-stamp counter, scaled from steady_clock readings taken at least 200 ms apart). Once it has
// taken over, a handler's time in the histogram is still what steady_clock says it took.
TEST(Metrics, HandlerTimesAgreeWithSteadyClockOnceTheCheaperClockTakesOver) {
  std::this_thread::sleep_for(250ms); // the scale can be learnt from the first lap that follows
  std::atomic<std::int64_t> slept_ns{0};
  tao::Server server(test::local_server(0, 1));
  server.handle<Text>([&](tao::Connection& c, const Text& m) {
    if (m.text == "slow") {
      const auto t0 = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(15ms);
      slept_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count();
    }
    c.write(m);
  });
  server.start();
  RawPeer peer(server.port());
  ASSERT_TRUE(peer.send(test::frame(1, "first")));
  ASSERT_TRUE(peer.read_frame());
  ASSERT_TRUE(test::eventually([&] { return server.metrics().handler_seconds.count == 1; }));
  const tao::HistogramSnapshot before = server.metrics().handler_seconds;
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(peer.send(test::frame(1, "slow")));
  ASSERT_TRUE(peer.read_frame());
  ASSERT_TRUE(test::eventually([&] { return server.metrics().handler_seconds.count == 2; }));
  const double window =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  const tao::HistogramSnapshot after = server.metrics().handler_seconds;
  const double lap = after.sum_seconds - before.sum_seconds;
  const double slept = static_cast<double>(slept_ns.load()) / 1e9;
  // The lap holds the sleep (and the decoding and the write) and lies within the test's window
  // from sending the message to seeing it counted; a wrong scale would miss one or the other.
  EXPECT_GE(lap, slept * 0.99) << "lap " << lap << " s, slept " << slept << " s";
  EXPECT_LE(lap, window * 1.01) << "lap " << lap << " s, window " << window << " s";
  std::size_t bucket = 0; // the one that got the new observation
  for (std::size_t i = 0; i < after.counts.size(); ++i)
    if (after.counts[i] != before.counts[i]) bucket = i;
  ASSERT_LT(bucket, tao::handler_seconds_bounds.size());
  EXPECT_GE(tao::handler_seconds_bounds[bucket], slept);
  EXPECT_TRUE(bucket == 0 || tao::handler_seconds_bounds[bucket - 1] < lap);
}

TEST(Metrics, SnapshotMatchesTheEndpointWithHandlersOnWorkers) {
  EchoServer s(server_with_endpoint(2));
  tao::Client client(test::local_client(s.server.port()));
  std::atomic<int> echoes{0};
  client.handle<Text>([&](tao::Connection&, const Text&) { ++echoes; });
  ASSERT_FALSE(client.connect());
  for (int i = 0; i < 20; ++i)
    ASSERT_FALSE(client.write(Text{"n" + std::to_string(i)}));
  ASSERT_TRUE(test::eventually([&] { return echoes.load() == 20; }));
  // A handler's time is recorded when it returns, after its reply may already have arrived (the
  // server's on its worker, the client's on its loop): wait for all 20 on both sides.
  ASSERT_TRUE(test::eventually([&] {
    const tao::MetricsSnapshot now = s.server.metrics();
    return now.frames_out == 20 && now.handler_seconds.count == 20;
  }));
  ASSERT_TRUE(test::eventually([&] { return client.metrics().handler_seconds.count == 20; }));

  const tao::MetricsSnapshot m = s.server.metrics();
  const Exposition e = scrape(s.server.metrics_port());
  EXPECT_EQ(m.frames_in, 20u);
  EXPECT_EQ(m.handler_seconds.count, 20u); // timed on the workers
  EXPECT_EQ(m.connections_current, 1u);
  EXPECT_EQ(m.connections_accepted, 1u);
  EXPECT_EQ(e["tao_frames_in_total"], static_cast<double>(m.frames_in));
  EXPECT_EQ(e["tao_frames_out_total"], static_cast<double>(m.frames_out));
  EXPECT_EQ(e["tao_bytes_in_total"], static_cast<double>(m.bytes_in));
  EXPECT_EQ(e["tao_bytes_out_total"], static_cast<double>(m.bytes_out));
  EXPECT_EQ(e["tao_connections_current"], static_cast<double>(m.connections_current));
  EXPECT_EQ(e["tao_connections_accepted_total"], static_cast<double>(m.connections_accepted));
  EXPECT_EQ(e["tao_handler_seconds_count"], static_cast<double>(m.handler_seconds.count));
  EXPECT_EQ(m.bytes_in, m.bytes_out); // an echo

  // The client keeps its own counters.
  const tao::MetricsSnapshot c = client.metrics();
  EXPECT_EQ(c.frames_out, 20u);
  EXPECT_EQ(c.frames_in, 20u);
  EXPECT_EQ(c.handler_seconds.count, 20u); // handlers on the client's loop
  EXPECT_EQ(c.connections_accepted, 1u);
  EXPECT_EQ(client.metrics_port(), 0); // no endpoint unless asked
}

TEST(Metrics, AClientCanServeItsOwnEndpoint) {
  EchoServer s(test::local_server());
  tao::ClientOptions o = test::local_client(s.server.port());
  o.metrics.http = tao::MetricsHttpOptions{};
  tao::Client client(o);
  std::atomic<int> echoes{0};
  client.handle<Text>([&](tao::Connection&, const Text&) { ++echoes; });
  ASSERT_NE(client.metrics_port(), 0);
  EXPECT_EQ(scrape(client.metrics_port())["tao_connections_current"], 0); // before connect()
  ASSERT_FALSE(client.connect());
  for (int i = 0; i < 3; ++i)
    ASSERT_FALSE(client.write(Text{"c"}));
  ASSERT_TRUE(test::eventually([&] { return echoes.load() == 3; }));
  const Exposition e = scrape(client.metrics_port());
  EXPECT_EQ(e["tao_frames_out_total"], 3);
  EXPECT_EQ(e["tao_frames_in_total"], 3);
  EXPECT_EQ(e["tao_connections_current"], 1);
  client.stop();
  // The endpoint stopped with the client: nothing listens on its port any more.
  EXPECT_THROW(RawPeer{client.metrics_port()}, std::runtime_error);
}

TEST(Metrics, HandlerTimingCanBeTurnedOffAndRefusedConnectionsAreCounted) {
  tao::ServerOptions o = test::local_server();
  o.metrics.handler_timing = false;
  o.max_connections = 1;
  EchoServer s(o);
  EXPECT_EQ(s.server.metrics_port(), 0); // off by default
  RawPeer first(s.server.port());
  first.send(test::frame(1, "x"));
  ASSERT_TRUE(first.read_frame());
  RawPeer second(s.server.port());
  EXPECT_TRUE(second.closed_by_peer());
  const tao::MetricsSnapshot m = s.server.metrics();
  EXPECT_EQ(m.frames_in, 1u);
  EXPECT_EQ(m.handler_seconds.count, 0u);
  EXPECT_EQ(m.connections_refused, 1u);
  EXPECT_EQ(m.connections_refused, s.server.refused_connections());
}

TEST(Metrics, HeartbeatTimeoutIsCounted) {
  tao::ServerOptions o = test::local_server();
  o.heartbeat.timeout = 100ms;
  EchoServer s(o);
  RawPeer silent(s.server.port());
  EXPECT_TRUE(silent.closed_by_peer());
  ASSERT_TRUE(test::eventually([&] { return s.server.metrics().heartbeat_timeouts == 1; }));
  EXPECT_EQ(s.server.metrics().connections_closed, 1u);
}

TEST(MetricsHttp, BadRequestsGetAnErrorOrACloseAndTheEndpointKeepsServing) {
  EchoServer s(server_with_endpoint());
  const std::uint16_t port = s.server.metrics_port();

  // A malformed request line.
  HttpResponse r = http_exchange(port, "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(get_metrics(port).status, 200);

  // Headers past the cap: 431, or a close if the endpoint stopped reading mid-request.
  r = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                              "\r\n\r\n");
  EXPECT_TRUE(r.status == 431 || r.status == 0) << r.status;
  EXPECT_EQ(get_metrics(port).status, 200);

  // A request body the endpoint does not take.
  r = http_exchange(port, "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.status, 400);

  // Unknown path, wrong method.
  r = http_exchange(port, "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 404);
  r = http_exchange(port, "POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 405);

  // A client that connects and says nothing is closed after the read timeout (300 ms here).
  {
    RawPeer silent(port);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.closed_by_peer(3s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  // Half a request, then silence: the same.
  {
    RawPeer half(port);
    half.send("GET /metr");
    EXPECT_TRUE(half.closed_by_peer(3s));
  }
  EXPECT_EQ(get_metrics(port).status, 200);
}

TEST(MetricsHttp, KeepAliveAndConnectionCap) {
  tao::ServerOptions o = test::local_server();
  o.metrics.http = tao::MetricsHttpOptions{
      .max_connections = 2, .read_timeout = 2s, .max_requests_per_connection = 2};
  EchoServer s(o);
  const std::uint16_t port = s.server.metrics_port();

  // Keep-alive: two requests on one connection, then the endpoint closes it (the cap is 2).
  {
    RawPeer p(port);
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    p.send(req + req + req);
    const std::string raw = read_until_close(p, 3s);
    std::size_t answers = 0;
    for (auto at = raw.find("HTTP/1.1 200"); at != std::string::npos;
         at = raw.find("HTTP/1.1 200", at + 1))
      ++answers;
    EXPECT_EQ(answers, 2u);
  }
  // Past max_connections a new connection is closed at once; the endpoint serves again once the
  // silent ones time out.
  ASSERT_TRUE(test::eventually([&] { return get_metrics(port).status == 200; }));
  RawPeer a(port), b(port);
  // An answer proves the endpoint accepted the connection; keep-alive keeps both open.
  const std::string keep_alive = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  a.send(keep_alive);
  b.send(keep_alive);
  ASSERT_TRUE(read_until_seen(a, "HTTP/1.1 200"));
  ASSERT_TRUE(read_until_seen(b, "HTTP/1.1 200"));
  // Refused at once: well before the 2 s read timeout that would close it were it admitted (or
  // would free a slot for it), with room for a stalled endpoint thread under sanitizers.
  RawPeer c(port);
  EXPECT_TRUE(c.closed_by_peer(1500ms));
  EXPECT_TRUE(a.closed_by_peer(5s));
  EXPECT_TRUE(b.closed_by_peer(5s));
  ASSERT_TRUE(test::eventually([&] { return get_metrics(port).status == 200; }));
}

TEST(MetricsHttp, BindFailureThrowsAtStart) {
  EchoServer first(server_with_endpoint());
  tao::ServerOptions o = test::local_server();
  o.metrics.http = tao::MetricsHttpOptions{.port = first.server.metrics_port()};
  tao::Server second(o);
  EXPECT_THROW(second.start(), std::system_error);
}

TEST(Logging, OwnSinkSeesLifecycleAtDebugAndNothingPerMessageAtInfo) {
  test::CapturedLog log;
  {
    tao::ServerOptions o = test::local_server();
    o.log_level = "debug";
    EchoServer s(o);
    EXPECT_EQ(tao::logger()->level(), spdlog::level::debug);
    {
      RawPeer p(s.server.port());
      p.send(test::frame(1, "hi"));
      ASSERT_TRUE(p.read_frame());
    }
    ASSERT_TRUE(test::eventually([&] { return s.server.metrics().connections_closed == 1; }));
  }
  const std::string debug_text = log.text();
  EXPECT_NE(debug_text.find("debug server#"), std::string::npos) << debug_text;
  EXPECT_NE(debug_text.find(": connected"), std::string::npos) << debug_text;
  EXPECT_NE(debug_text.find(": closed"), std::string::npos) << debug_text;

  tao::ServerOptions o = test::local_server(1);
  o.log_level = "info";
  EchoServer s(o);
  tao::Client client(test::local_client(s.server.port()));
  std::atomic<int> echoes{0};
  client.handle<Text>([&](tao::Connection&, const Text&) { ++echoes; });
  ASSERT_FALSE(client.connect());
  const std::size_t before = log.text().size();
  for (int i = 0; i < 200; ++i)
    ASSERT_FALSE(client.write(Text{"m"}));
  ASSERT_TRUE(test::eventually([&] { return echoes.load() == 200; }));
  EXPECT_EQ(log.text().substr(before), "");
}

TEST(Logging, UnknownLevelNameThrowsAtConstruction) {
  tao::ServerOptions o = test::local_server();
  o.log_level = "loud";
  EXPECT_THROW(tao::Server{o}, std::invalid_argument);
  tao::ClientOptions c = test::local_client(1);
  c.log_level = "verbose";
  EXPECT_THROW(tao::Client{c}, std::invalid_argument);
}

} // namespace
