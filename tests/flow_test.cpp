// Issue 3: worker pool ordering, isolation between connections, backpressure, slow readers and
// the chat server's broadcast.
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Seq;
using test::Text;

std::string seq_frame(std::int32_t sender, std::int64_t n) {
  return test::frame(Seq::type, [&] {
    tao::Buffer b;
    Seq{sender, n}.encode(b);
    return b.str();
  }());
}

// Lets a test hold a handler asleep until it says so (30 s at most, should the test fail).
struct Waker {
  std::promise<void> promise;
  std::shared_future<void> woken = promise.get_future().share();
  bool done = false;
  void wake() {
    if (!done) promise.set_value();
    done = true;
  }
};

// On every way out of a test (a failed ASSERT too): wakes the sleeping handler, unblocks the
// peer's send still in progress (shutdown) and joins the thread making it.
struct JoinSender {
  std::thread& t;
  RawPeer& peer;
  Waker& waker;
  ~JoinSender() {
    waker.wake();
    ::shutdown(peer.fd(), SHUT_RDWR);
    if (t.joinable()) t.join();
  }
};

// Wakes the sleeper when destroyed: declared after the server, so destroyed before it, the
// server's destructor never waits for a handler that nobody would wake.
struct WakeAtExit {
  Waker& w;
  ~WakeAtExit() { w.wake(); }
};

// Asks a peer's connection for its id (the Text handlers below answer "id <id>").
tao::ConnectionId id_of(RawPeer& p) {
  p.send(test::frame(1, "id"));
  auto f = p.read_frame();
  return std::stoull(f->second.substr(3));
}

// A Text handler that answers "<first 16 bytes of the text> <connection id>", and for "sleep"
// first sleeps until `waker` wakes it (setting `asleep`).
auto sleepy_handler(Waker& waker, std::atomic<bool>& asleep) {
  return [&waker, &asleep](tao::Connection& c, const Text& m) {
    if (m.text == "sleep") {
      asleep = true;
      waker.woken.wait_for(30s);
    }
    c.write(Text{m.text.substr(0, 16) + " " + std::to_string(c.id())});
  };
}

// A new peer whose connection is served by worker `worker` (same) or by another one (!same),
// with its connection's id; null if 8 tries found none.
std::pair<std::unique_ptr<RawPeer>, tao::ConnectionId>
peer_on_worker(tao::Server& s, std::size_t worker, bool same) {
  for (int i = 0; i < 8; ++i) {
    auto p = std::make_unique<RawPeer>(s.port());
    const auto id = id_of(*p);
    if ((s.workers()->worker_for(id) == worker) == same) return {std::move(p), id};
  }
  return {nullptr, 0};
}

TEST(Workers, EachConnectionsMessagesStayInOrderWithEightWorkers) {
  std::mutex m;
  std::map<tao::ConnectionId, std::int64_t> last;
  std::atomic<int> out_of_order{0}, handled{0};
  tao::Server s(test::local_server(8));
  s.handle<Seq>([&](tao::Connection& c, const Seq& q) {
    {
      std::lock_guard l(m);
      auto [it, fresh] = last.try_emplace(c.id(), -1);
      if (q.n != it->second + 1) ++out_of_order;
      it->second = q.n;
    }
    ++handled;
    c.write(q);
  });
  s.start();
  constexpr int conns = 100, per_conn = 100;
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < conns; ++i)
    peers.push_back(std::make_unique<RawPeer>(s.port()));
  for (int k = 0; k < per_conn; ++k) // interleaved: one message per connection in turn
    for (int i = 0; i < conns; ++i)
      peers[i]->send(seq_frame(i, k));
  for (int i = 0; i < conns; ++i)
    for (int k = 0; k < per_conn; ++k) {
      auto f = peers[i]->read_frame();
      ASSERT_TRUE(f);
      auto q = Seq::decode(tao::ByteView(f->second));
      ASSERT_EQ(q->sender, i);
      ASSERT_EQ(q->n, k);
    }
  EXPECT_EQ(handled, conns * per_conn);
  EXPECT_EQ(out_of_order, 0);
}

TEST(Workers, ASleepingHandlerDoesNotDelayAnotherConnection) {
  // The "sleep" handler sleeps until the test wakes it (30 s at most, should the test fail), so
  // the other connection's round trip is known to happen while it sleeps, however slow the box.
  Waker waker;
  std::atomic<bool> asleep{false};
  tao::Server s(test::local_server(4));
  // Declared after the server, so destroyed before it: the server's destructor never waits for
  // a handler that nobody will wake.
  WakeAtExit wake_at_exit{waker};
  s.handle<Text>(sleepy_handler(waker, asleep));
  s.start();
  RawPeer sleeper(s.port());
  auto other = peer_on_worker(s, s.workers()->worker_for(id_of(sleeper)), false).first;
  ASSERT_TRUE(other);
  sleeper.send(test::frame(1, "sleep"));
  ASSERT_TRUE(test::eventually([&] { return asleep.load(); })); // the sleeper's handler is asleep
  other->send(test::frame(1, "quick"));
  // Answered while the sleeper still sleeps: had it waited for the sleeping handler, no answer
  // could come before the wake-up below.
  auto f = other->read_frame(10s);
  ASSERT_TRUE(f) << "round trip of the other connection waited for the sleeping handler";
  EXPECT_EQ(f->second.substr(0, 6), "quick ");
  waker.wake();
  EXPECT_TRUE(sleeper.read_frame(5s)); // and the sleeper is answered too
}

TEST(Backpressure, AFastSenderToASlowHandlerIsSlowedNotDropped) {
  auto o = test::local_server(2);
  o.connection.max_pending_messages = 16;
  tao::Server s(o);
  std::atomic<std::int64_t> next{0};
  std::atomic<int> wrong{0};
  std::atomic<std::size_t> max_pending{0}, max_pool_queued{0};
  s.handle<Seq>([&](tao::Connection& c, const Seq& q) {
    if (q.n != next.load()) ++wrong;
    next = q.n + 1;
    std::size_t p = c.pending_tasks();
    std::size_t pq = s.workers()->queued();
    if (p > max_pending) max_pending = p;
    if (pq > max_pool_queued) max_pool_queued = pq;
    std::this_thread::sleep_for(500us);
  });
  s.start();
  constexpr int n = 2000;
  RawPeer p(s.port());
  std::thread sender([&] {
    std::string burst;
    for (int i = 0; i < n; ++i)
      burst += seq_frame(0, i);
    p.send(burst); // as fast as TCP takes it
  });
  ASSERT_TRUE(test::eventually([&] { return next == n; }, 30s)) << next.load();
  sender.join();
  EXPECT_EQ(wrong, 0);                // exactly once, in order
  EXPECT_LE(max_pending.load(), 16u); // the connection's bound held
  EXPECT_LE(max_pool_queued.load(), 16u);
  EXPECT_GT(max_pending.load(), 1u); // and the pool really was busy
}

TEST(Backpressure, ALoopStopsReadingWhileItsWorkerBacklogIsFullAndLosesNothing) {
  // Eight peers flood one loop whose single worker is slow: the loop's queued messages stay
  // within max_worker_backlog (plus one frame), the rest waits in TCP, and every message is
  // handled once, in order.
  auto o = test::local_server(1);
  o.io_threads = 1;
  constexpr std::size_t limit = 64u << 10;
  o.connection.max_worker_backlog = limit;
  o.connection.max_pending_messages = 100000; // only the loop's bound applies here
  constexpr int conns = 8, n = 400;
  const std::string pad(1000, 'b');
  std::mutex m; // (before the server, which outlives nothing its handlers use)
  std::map<tao::ConnectionId, int> next;
  std::atomic<int> wrong{0}, handled{0};
  tao::Server s(o);
  s.handle<Text>([&](tao::Connection& c, const Text& t) {
    {
      std::lock_guard l(m);
      int& want = next[c.id()];
      if (t.text != std::to_string(want) + pad) ++wrong;
      ++want;
    }
    ++handled;
    std::this_thread::sleep_for(50us);
    c.write(Text{t.text.substr(0, t.text.size() - pad.size())});
  });
  s.start();
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> peak{0};
  std::thread watch([&] {
    while (!done) {
      const std::uint64_t b = s.metrics().worker_backlog_bytes;
      if (b > peak) peak = b;
      std::this_thread::sleep_for(200us);
    }
  });
  std::vector<std::unique_ptr<RawPeer>> peers;
  std::vector<std::thread> senders;
  struct Finish { // on every way out (a failed ASSERT too): unblock the senders, join all
    std::atomic<bool>& done;
    std::thread& watch;
    std::vector<std::unique_ptr<RawPeer>>& peers;
    std::vector<std::thread>& senders;
    ~Finish() {
      done = true;
      for (auto& p : peers)
        ::shutdown(p->fd(), SHUT_RDWR); // a send blocked by the paused server returns
      for (auto& t : senders)
        if (t.joinable()) t.join();
      if (watch.joinable()) watch.join();
    }
  } finish{done, watch, peers, senders};
  for (int i = 0; i < conns; ++i)
    peers.push_back(std::make_unique<RawPeer>(s.port()));
  for (int i = 0; i < conns; ++i)
    senders.emplace_back([&, i] {
      std::string burst;
      for (int k = 0; k < n; ++k)
        burst += test::frame(1, std::to_string(k) + pad);
      peers[i]->send(burst);
    });
  for (int i = 0; i < conns; ++i)
    for (int k = 0; k < n; ++k) {
      auto f = peers[i]->read_frame(20s);
      ASSERT_TRUE(f) << "connection " << i << " message " << k;
      ASSERT_EQ(f->second, std::to_string(k));
    }
  for (auto& t : senders)
    t.join();
  done = true;
  watch.join();
  EXPECT_EQ(handled, conns * n);
  EXPECT_EQ(wrong, 0);
  EXPECT_LE(peak.load(), limit + 1100) << "the loop's bound held (one frame over at most)";
  EXPECT_GT(peak.load(), limit / 2) << "and the worker really had a backlog";
  EXPECT_TRUE(test::eventually([&] { return s.metrics().worker_backlog_bytes == 0; }));
}

TEST(Backpressure, AStuckWorkerStopsOnlyTheConnectionsItServes) {
  // A handler blocks its worker; its connection keeps sending until the loop's backlog for that
  // worker (half of max_worker_backlog with two workers) is full. The loop stops reading that
  // connection only: a connection served by the other worker still gets its answers. (With one
  // backlog for the whole loop, the stuck worker's messages would stop every connection.)
  Waker waker;
  std::atomic<bool> asleep{false};
  auto o = test::local_server(2);
  o.io_threads = 1;
  constexpr std::size_t limit = 64u << 10;
  o.connection.max_worker_backlog = limit;
  tao::Server s(o);
  WakeAtExit wake_at_exit{waker};
  s.handle<Text>(sleepy_handler(waker, asleep));
  s.start();
  RawPeer sleeper(s.port());
  auto other = peer_on_worker(s, s.workers()->worker_for(id_of(sleeper)), false).first;
  ASSERT_TRUE(other);
  sleeper.send(test::frame(1, "sleep"));
  ASSERT_TRUE(test::eventually([&] { return asleep.load(); }));
  constexpr int n = 100; // 100 KiB: more than the whole loop's limit
  const std::string pad(1000, 's');
  std::thread flood([&] {
    std::string burst;
    for (int k = 0; k < n; ++k)
      burst += test::frame(1, std::to_string(k) + pad);
    sleeper.send(burst);
  });
  JoinSender join_flood{flood, sleeper, waker};
  // The sleeper's share is full: the loop has stopped reading it.
  ASSERT_TRUE(test::eventually([&] { return s.metrics().worker_backlog_bytes >= limit / 2; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_LE(s.metrics().worker_backlog_bytes, limit / 2 + 1100) << "the worker's share held";
  other->send(test::frame(1, "quick"));
  auto f = other->read_frame(10s);
  ASSERT_TRUE(f) << "a connection of the other worker waited for the stuck one";
  EXPECT_EQ(f->second.substr(0, 6), "quick ");
  EXPECT_TRUE(asleep.load());
  waker.wake();
  auto first = sleeper.read_frame(10s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->second.substr(0, 6), "sleep ");
  for (int k = 0; k < n; ++k) { // and every message of the stopped connection, in order
    auto r = sleeper.read_frame(10s);
    ASSERT_TRUE(r) << k;
    EXPECT_EQ(r->second.substr(0, r->second.find('s')), std::to_string(k)) << k;
  }
}

TEST(Backpressure, APeerThatHangsUpWhileItsConnectionWaitsForAStuckWorkerIsClosed) {
  // A connection paused behind a stuck worker's backlog reads nothing, so it cannot see its
  // peer leave; the heartbeat sweep looks and closes it close_timeout later, with an error that
  // says what was left unread, instead of keeping the descriptor until the worker wakes.
  Waker waker;
  std::atomic<bool> asleep{false};
  auto o = test::local_server(2);
  o.io_threads = 1;
  o.connection.max_worker_backlog = 64u << 10;
  o.connection.close_timeout = 200ms;
  // The sweep runs every 1.5 s; the bystander is paused long before its 6 s of silence are up.
  o.heartbeat.timeout = 6s;
  // Before the server: its destructor closes the connections left, and on_close writes here.
  std::mutex m;
  std::map<tao::ConnectionId, std::string> errors;
  std::set<tao::ConnectionId> closed;
  tao::Server s(o);
  WakeAtExit wake_at_exit{waker};
  s.on_error([&](tao::Connection& c, const tao::Error& e) {
    std::lock_guard l(m);
    if (e.code == tao::errc::close_timeout) errors[c.id()] = e.message;
  });
  s.on_close([&](tao::Connection& c) {
    std::lock_guard l(m);
    closed.insert(c.id());
  });
  s.handle<Text>(sleepy_handler(waker, asleep));
  s.start();
  RawPeer sleeper(s.port());
  // Served by the same worker.
  auto found = peer_on_worker(s, s.workers()->worker_for(id_of(sleeper)), true);
  auto& bystander = found.first;
  const tao::ConnectionId bystander_id = found.second;
  ASSERT_TRUE(bystander);
  sleeper.send(test::frame(1, "sleep"));
  ASSERT_TRUE(test::eventually([&] { return asleep.load(); }));
  std::string burst;
  for (int k = 0; k < 100; ++k)
    burst += test::frame(1, std::to_string(k) + std::string(1000, 's'));
  std::thread flood([&] { sleeper.send(burst); });
  JoinSender join_flood{flood, sleeper, waker};
  ASSERT_TRUE(test::eventually([&] { return s.metrics().worker_backlog_bytes >= (32u << 10); }));
  bystander->send(test::frame(1, "never read")); // queued behind the sleeper: paused
  std::this_thread::sleep_for(100ms);
  bystander->close();
  ASSERT_TRUE(test::eventually([&] { return s.connection(bystander_id) == nullptr; }, 20s))
      << "the connection of the peer that left stayed open";
  EXPECT_FALSE(waker.done); // closed while the worker was still stuck
  // Its on_error and on_close run where its handlers run: on the stuck worker, once it wakes.
  waker.wake();
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(m);
    return closed.count(bystander_id) == 1;
  }));
  std::lock_guard l(m);
  ASSERT_EQ(errors.count(bystander_id), 1u);
  EXPECT_NE(errors[bystander_id].find("unread"), std::string::npos) << errors[bystander_id];
}

TEST(Backpressure, ARequesterThatNeverReadsRepliesIsSlowedByTcpAndLosesNothing) {
  auto o = test::local_server(0);
  o.connection.pause_reading_at = 64 << 10;
  o.connection.resume_reading_at = 16 << 10;
  o.connection.send_high_water = 1 << 20;
  tao::Server s(o);
  std::atomic<int> full_errors{0};
  std::atomic<std::size_t> max_queued{0};
  s.handle<Text>([&](tao::Connection& c, const Text& m) {
    auto ec = c.write(Text{"re " + m.text});
    if (ec) ++full_errors;
    if (c.queued_bytes() > max_queued) max_queued = c.queued_bytes();
  });
  s.start();
  // 20,000 requests of 1 KiB: 20 MiB each way, far more than the socket buffers hold.
  constexpr int n = 20000;
  const std::string pad(1024, 'q');
  RawPeer p(s.port());
  std::atomic<bool> sent_all{false};
  std::thread sender([&] {
    std::string burst;
    for (int i = 0; i < n; ++i)
      burst += test::frame(1, std::to_string(i) + " " + pad);
    sent_all = p.send(burst);
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(sent_all) << "the server should have stopped reading, so TCP blocks the sender";
  for (int i = 0; i < n; ++i) {
    auto f = p.read_frame(10s);
    ASSERT_TRUE(f) << i;
    ASSERT_EQ(f->second, "re " + std::to_string(i) + " " + pad);
  }
  sender.join();
  EXPECT_TRUE(sent_all);
  EXPECT_EQ(full_errors, 0); // no reply was refused
  EXPECT_LE(max_queued.load(), (64u << 10) + 2048);
}

TEST(SlowReaders, APeerThatNeverReadsHasBoundedMemoryAndOthersGetEverything) {
  auto o = test::local_server(2);
  o.connection.send_high_water = 256 << 10;
  tao::Server s(o);
  std::atomic<int> full_reports{0};
  s.on_error([&](tao::Connection&, const tao::Error& e) {
    if (e.code == tao::errc::send_queue_full) ++full_reports;
  });
  s.start();
  RawPeer stalled(s.port());
  stalled.set_receive_buffer(4096);
  constexpr int readers = 3, n = 3000;
  std::vector<std::unique_ptr<RawPeer>> rs;
  for (int i = 0; i < readers; ++i)
    rs.push_back(std::make_unique<RawPeer>(s.port()));
  ASSERT_TRUE(test::eventually([&] { return s.connection_count() == readers + 1; }));
  std::vector<tao::ConnectionPtr> reader_conns;
  s.for_each_connection([&](const tao::ConnectionPtr& c) {
    if (c->remote_endpoint().port != stalled.local_port()) reader_conns.push_back(c);
  });
  ASSERT_EQ(reader_conns.size(), static_cast<std::size_t>(readers));
  std::atomic<int> complete{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < readers; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < n; ++k) {
        auto f = rs[i]->read_frame(10s);
        if (!f || f->second.substr(0, f->second.find(' ')) != std::to_string(k)) return;
      }
      ++complete;
    });
  const std::string pad(4000, 'b'); // 12 MB in all: more than the kernel buffers absorb
  std::size_t max_stalled_queue = 0;
  int refused_by_stalled = 0;
  for (int k = 0; k < n; ++k) {
    const std::size_t accepted = s.broadcast(Text{std::to_string(k) + " " + pad});
    refused_by_stalled += accepted < readers + 1;
    if (accepted < static_cast<std::size_t>(readers)) {
      ADD_FAILURE() << "a reading client refused message " << k;
      break; // the reader threads then time out and the test ends cleanly
    }
    s.for_each_connection([&](const tao::ConnectionPtr& c) {
      max_stalled_queue = std::max(max_stalled_queue, c->queued_bytes());
    });
    if (k % 16 == 0) { // let the readers keep up, so only the stalled peer hits its bound
      for (auto& c : reader_conns)
        EXPECT_TRUE(test::eventually([&] { return c->queued_bytes() < (64u << 10); }, 10s));
    }
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(complete, readers);
  EXPECT_GT(refused_by_stalled, 0);
  EXPECT_LE(max_stalled_queue, (256u << 10) + 4100); // the bound plus at most one frame
  EXPECT_TRUE(test::eventually([&] { return full_reports >= 1; }));
  EXPECT_LE(full_reports.load(), 3); // reported per episode, not per refused write
}

TEST(SlowReaders, OptionClosesAPeerWhoseQueueIsFull) {
  auto o = test::local_server(0);
  o.connection.send_high_water = 64 << 10;
  o.connection.close_when_send_queue_full = true;
  tao::Server s(o);
  std::promise<std::error_code> reason;
  s.on_close([&](tao::Connection& c) { reason.set_value(c.close_reason()); });
  s.start();
  RawPeer stalled(s.port());
  stalled.set_receive_buffer(4096);
  ASSERT_TRUE(test::eventually([&] { return s.connection_count() == 1; }));
  const std::string pad(4000, 'x');
  for (int k = 0; k < 10000 && s.connection_count() == 1; ++k)
    s.broadcast(Text{pad});
  auto f = reason.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), tao::errc::send_queue_full);
}

TEST(Chat, ThreeClientsEachSeeEveryMessageInOneOrderPerSender) {
  tao::Server server(test::local_server(4));
  server.handle<Text>([&](tao::Connection&, const Text& m) { server.broadcast(m); });
  server.start();
  constexpr int clients = 3, per_client = 50;
  struct Member {
    std::unique_ptr<tao::Client> client;
    std::mutex m;
    std::vector<std::string> got;
  };
  std::vector<Member> members(clients);
  for (auto& mb : members) {
    mb.client = std::make_unique<tao::Client>(test::local_client(server.port()));
    mb.client->handle<Text>([&mb](tao::Connection&, const Text& t) {
      std::lock_guard l(mb.m);
      mb.got.push_back(t.text);
    });
    ASSERT_FALSE(mb.client->connect());
  }
  ASSERT_TRUE(test::eventually([&] { return server.connection_count() == clients; }));
  std::vector<std::thread> talkers;
  for (int c = 0; c < clients; ++c)
    talkers.emplace_back([&, c] {
      for (int k = 0; k < per_client; ++k)
        members[c].client->write(Text{std::to_string(c) + ":" + std::to_string(k)});
    });
  for (auto& t : talkers)
    t.join();
  for (auto& mb : members) {
    ASSERT_TRUE(test::eventually(
        [&] {
          std::lock_guard l(mb.m);
          return mb.got.size() == clients * per_client;
        },
        10s));
    std::lock_guard l(mb.m);
    std::vector<int> next(clients, 0);
    for (const auto& line : mb.got) {
      int sender = std::stoi(line.substr(0, line.find(':')));
      int k = std::stoi(line.substr(line.find(':') + 1));
      EXPECT_EQ(k, next[sender]) << line;
      next[sender] = k + 1;
    }
  }
}

} // namespace
