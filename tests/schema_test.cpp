// Schema messages: tao::Flat (FlatBuffers, verified, read in place) and tao::Proto (Protobuf),
// alone and through a real server and client.
#include <atomic>
#include <mutex>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <tao/flatbuffers.hpp>
#include <tao/protobuf.hpp>

#include "support.hpp"
#include "test_game_generated.h"
#include "test_note.pb.h"

namespace {

using namespace std::chrono_literals;
using State = tao::Flat<tao_test::GameState, 7>;
using Note = tao::Proto<tao_test::Note, 8>;

/// A finished GameState with `players` players.
void build_state(flatbuffers::FlatBufferBuilder& fbb, std::uint64_t tick, int players = 2) {
  std::vector<flatbuffers::Offset<tao_test::Player>> ps;
  for (int i = 0; i < players; ++i) {
    const tao_test::Vec2 pos(static_cast<float>(i), 2.5f);
    ps.push_back(tao_test::CreatePlayer(
        fbb, static_cast<std::uint32_t>(i + 1), fbb.CreateString("player" + std::to_string(i)),
        &pos, static_cast<std::int16_t>(90 + i),
        fbb.CreateVectorOfStrings(std::vector<std::string>{"sword", "shield"})));
  }
  fbb.Finish(tao_test::CreateGameState(fbb, tick, fbb.CreateVector(ps)));
}

std::string state_bytes(std::uint64_t tick, int players = 2) {
  flatbuffers::FlatBufferBuilder fbb;
  build_state(fbb, tick, players);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

void expect_state(const State& s, std::uint64_t tick, int players = 2) {
  ASSERT_TRUE(s);
  EXPECT_EQ(s->tick(), tick);
  ASSERT_NE(s->players(), nullptr);
  ASSERT_EQ(s->players()->size(), static_cast<unsigned>(players));
  const auto* p = s->players()->Get(1);
  EXPECT_EQ(p->id(), 2u);
  EXPECT_EQ(p->name()->str(), "player1");
  EXPECT_FLOAT_EQ(p->pos()->x(), 1.0f);
  EXPECT_EQ(p->hp(), 91);
  EXPECT_EQ(p->inventory()->Get(1)->str(), "shield");
}

/// 8-byte aligned storage with room to place bytes at any offset.
struct Aligned {
  alignas(16) char data[4096];
};

TEST(Flat, ABuiltMessageEncodesItsBufferAndDecodesInPlace) {
  flatbuffers::FlatBufferBuilder fbb;
  build_state(fbb, 42);
  State out(fbb);
  tao::Buffer b;
  out.encode(b);
  ASSERT_EQ(b.size(), fbb.GetSize());

  auto store = std::make_unique<Aligned>();
  std::memcpy(store->data, b.data(), b.size());
  auto in = State::decode(tao::ByteView(store->data, b.size()));
  ASSERT_TRUE(in);
  expect_state(*in, 42);
  EXPECT_FALSE(in->owns_bytes()); // no copy: the table lies in the input
  EXPECT_EQ(in->bytes().data(), store->data);
  EXPECT_GE(reinterpret_cast<const char*>(in->get()), store->data);
  EXPECT_LT(reinterpret_cast<const char*>(in->get()), store->data + b.size());
}

TEST(Flat, AMisalignedPayloadIsCopiedToAlignedBytesOnce) {
  const std::string bytes = state_bytes(7);
  auto store = std::make_unique<Aligned>();
  for (std::size_t shift = 1; shift < 8; ++shift) {
    std::memcpy(store->data + shift, bytes.data(), bytes.size());
    auto in = State::decode(tao::ByteView(store->data + shift, bytes.size()));
    ASSERT_TRUE(in) << shift;
    EXPECT_TRUE(in->owns_bytes());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(in->bytes().data()) % 8, 0u);
    expect_state(*in, 7);
  }
}

TEST(Flat, DetachKeepsTheMessageAfterItsBytesAreGone) {
  auto store = std::make_unique<Aligned>();
  const std::string bytes = state_bytes(9);
  std::memcpy(store->data, bytes.data(), bytes.size());
  auto in = State::decode(tao::ByteView(store->data, bytes.size()));
  ASSERT_TRUE(in);
  in->detach();
  EXPECT_TRUE(in->owns_bytes());
  std::memset(store->data, 0xAB, sizeof store->data); // the read buffer is reused
  expect_state(*in, 9);
  State copy = *in; // copies share the owned bytes
  in.reset();
  expect_state(copy, 9);

  flatbuffers::FlatBufferBuilder fbb;
  build_state(fbb, 10);
  State owned(fbb.Release());
  EXPECT_TRUE(owned.owns_bytes());
  expect_state(owned, 10);
}

TEST(Flat, TheVerifierRejectsTruncatedCorruptAndRandomBuffers) {
  const std::string good = state_bytes(5);
  auto store = std::make_unique<Aligned>();
  auto decode_at = [&](std::string_view bytes) {
    std::memcpy(store->data, bytes.data(), bytes.size());
    return State::decode(tao::ByteView(store->data, bytes.size()));
  };
  ASSERT_TRUE(decode_at(good));
  EXPECT_FALSE(State::decode(tao::ByteView()));
  // Cut anywhere into the data, the buffer fails; only trailing alignment padding (under 8
  // bytes, past the last string's terminator) may go unnoticed, and is never read.
  for (std::size_t n = 0; n + 8 < good.size(); ++n)
    EXPECT_FALSE(decode_at(std::string_view(good).substr(0, n))) << "prefix of " << n;
  for (std::size_t n = good.size() - 8; n < good.size(); ++n)
    if (auto s = decode_at(std::string_view(good).substr(0, n))) expect_state(*s, 5);
  // The root offset pointing past the end, or far beyond it.
  std::string bad = good;
  bad[0] = static_cast<char>(0xf0);
  bad[1] = static_cast<char>(0xff);
  EXPECT_FALSE(decode_at(bad));
  // Every single-byte corruption either verifies (a harmless value changed) or is rejected;
  // whatever verifies can be read entirely without leaving the buffer (ASan checks that).
  int rejected = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string c = good;
    c[i] = static_cast<char>(c[i] ^ 0x80);
    if (auto s = decode_at(c)) {
      if ((*s)->players())
        for (const auto* p : *(*s)->players())
          if (p->name()) (void)p->name()->str();
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(4 + rng() % 200, '\0');
    for (auto& ch : junk)
      ch = static_cast<char>(rng());
    if (auto s = decode_at(junk); s && (*s)->players())
      for (const auto* p : *(*s)->players())
        if (p->name()) (void)p->name()->str();
  }
}

TEST(Proto, RoundTripAndGarbageIsRejected) {
  Note n;
  n->set_id(12);
  n->set_text("hello");
  n->add_tags("a");
  tao::Buffer b;
  n.encode(b);
  auto back = Note::decode(b.view());
  ASSERT_TRUE(back);
  EXPECT_EQ((*back)->id(), 12u);
  EXPECT_EQ((*back)->text(), "hello");
  ASSERT_EQ((*back)->tags_size(), 1);
  EXPECT_FALSE(Note::decode(tao::ByteView(std::string_view("\xff\xff\xff\xff\xff", 5))));
  EXPECT_FALSE(Note::decode(b.view().subview(0, b.size() - 1))); // truncated
  EXPECT_TRUE(Note::decode(tao::ByteView())); // an empty payload is the all-default message
}

/// A server that answers each GameState with tick + 1 (same players) and each Note with its text
/// upper-cased, recording errors.
struct SchemaServer {
  explicit SchemaServer(std::size_t workers) : server(test::local_server(workers)) {
    server.handle<State>([this](tao::Connection& c, const State& s) {
      flatbuffers::FlatBufferBuilder fbb;
      build_state(fbb, s->tick() + 1, static_cast<int>(s->players()->size()));
      c.write(State(fbb));
      handled.fetch_add(1);
    });
    server.handle<Note>([](tao::Connection& c, const Note& n) {
      Note reply = n;
      std::string t = n->text();
      for (auto& ch : t)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      reply->set_text(t);
      c.write(reply);
    });
    server.on_error(errors.recorder());
    server.start();
  }
  std::atomic<int> handled{0};
  test::ErrorLog errors;
  tao::Server server;
};

void flat_round_trips(std::size_t server_workers, std::size_t client_workers) {
  std::mutex m;
  std::vector<std::uint64_t> ticks;
  std::atomic<bool> all_good{true};
  SchemaServer s(server_workers);
  auto o = test::local_client(s.server.port());
  o.workers = client_workers;
  tao::Client client(o);
  client.handle<State>([&](tao::Connection&, const State& st) {
    if (!st.get() || st->players()->size() != 2 ||
        st->players()->Get(1)->name()->str() != "player1")
      all_good = false;
    std::lock_guard l(m);
    ticks.push_back(st->tick());
  });
  ASSERT_FALSE(client.connect());
  constexpr int n = 300;
  for (int i = 0; i < n; ++i) {
    flatbuffers::FlatBufferBuilder fbb;
    build_state(fbb, static_cast<std::uint64_t>(i) * 10);
    ASSERT_FALSE(client.write(State(fbb)));
  }
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(m);
    return ticks.size() == n;
  }));
  std::lock_guard l(m);
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(ticks[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i) * 10 + 1);
  EXPECT_TRUE(all_good);
  EXPECT_TRUE(s.errors.empty());
}

TEST(FlatNet, GameStatesRoundTripWithHandlersOnTheLoops) { flat_round_trips(0, 0); }

TEST(FlatNet, GameStatesRoundTripWithHandlersOnWorkers) { flat_round_trips(3, 2); }

TEST(FlatNet, ACorruptBufferIsAProtocolErrorNotACrash) {
  for (std::size_t workers : {0u, 2u}) {
    SchemaServer s(workers);
    test::RawPeer bad(s.server.port());
    std::string corrupt = state_bytes(1);
    corrupt[0] = static_cast<char>(0x7f); // root offset far past the end
    corrupt[3] = static_cast<char>(0x7f);
    bad.send(test::frame(7, corrupt));
    EXPECT_TRUE(bad.closed_by_peer());
    EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::decode_failed); }));
    EXPECT_EQ(s.handled.load(), 0); // the handler never saw it

    test::RawPeer good(s.server.port());
    good.send(test::frame(7, state_bytes(41)));
    auto f = good.read_frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->first, 7);
    auto st = State::decode(tao::ByteView(f->second));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)->tick(), 42u);
  }
}

TEST(ProtoNet, NotesRoundTripAndGarbageClosesOnlyThatConnection) {
  std::mutex m;
  std::vector<std::string> texts;
  SchemaServer s(2);
  tao::Client client(test::local_client(s.server.port()));
  client.handle<Note>([&](tao::Connection&, const Note& n) {
    std::lock_guard l(m);
    texts.push_back(n->text() + "#" + std::to_string(n->id()));
  });
  ASSERT_FALSE(client.connect());
  for (int i = 0; i < 20; ++i) {
    Note n;
    n->set_id(static_cast<std::uint64_t>(i));
    n->set_text("note");
    ASSERT_FALSE(client.write(n));
  }
  test::RawPeer bad(s.server.port());
  bad.send(test::frame(8, "\xff\xff\xff\xff\xff\xff"));
  EXPECT_TRUE(bad.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::decode_failed); }));
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(m);
    return texts.size() == 20;
  }));
  std::lock_guard l(m);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(texts[static_cast<std::size_t>(i)], "NOTE#" + std::to_string(i));
}

} // namespace
