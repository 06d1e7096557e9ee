// Game server (FlatBuffers): players join and move on a 10 x 10 board; after every change the
// server sends the whole world (a State table) to everyone.
#include <algorithm>
#include <map>
#include <mutex>

#include "game/messages.hpp"

using namespace example::game_msg;

struct World {
  struct Player {
    std::string name;
    int x = 0, y = 0;
  };
  std::mutex mutex;
  std::uint64_t tick = 0;
  std::map<tao::ConnectionId, Player> players;

  /// The world as a finished FlatBuffer, built under the lock; the next change gets a new tick.
  void snapshot(flatbuffers::FlatBufferBuilder& fbb) {
    std::lock_guard lock(mutex);
    std::vector<flatbuffers::Offset<game::Player>> ps;
    for (const auto& [id, p] : players) {
      const game::Vec2 pos(p.x, p.y);
      ps.push_back(game::CreatePlayer(fbb, id, fbb.CreateString(p.name), &pos));
    }
    fbb.Finish(game::CreateState(fbb, ++tick, fbb.CreateVector(ps)));
  }
};

int main(int argc, char** argv) {
  CLI::App app{"tao game server (FlatBuffers)"};
  example::Flags f;
  f.zero_workers_means_hardware = true; // the handlers always run on a worker pool
  example::add_common_flags(app, f, true);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::ServerOptions o = example::server_options(f);
  tao::Server server(o);
  World world;
  auto publish = [&] {
    flatbuffers::FlatBufferBuilder fbb;
    world.snapshot(fbb);
    server.broadcast(State(fbb)); // encoded once, sent to every connection
  };
  // The handlers read the tables where they arrived: verified, not copied.
  server.handle<Join>([&](tao::Connection& c, const Join& j) {
    {
      std::lock_guard lock(world.mutex);
      world.players[c.id()].name = j->name() ? j->name()->str() : "anonymous";
    }
    tao::logger()->info("{} joined as {}", c.name(), j->name() ? j->name()->str() : "anonymous");
    publish();
  });
  server.handle<Move>([&](tao::Connection& c, const Move& m) {
    {
      std::lock_guard lock(world.mutex);
      auto it = world.players.find(c.id());
      if (it == world.players.end()) return; // moves before Join are ignored
      it->second.x = std::clamp(it->second.x + m->dx(), 0, board_size - 1);
      it->second.y = std::clamp(it->second.y + m->dy(), 0, board_size - 1);
    }
    publish();
  });
  server.on_close([&](tao::Connection& c) {
    bool was_playing = false;
    {
      std::lock_guard lock(world.mutex);
      was_playing = world.players.erase(c.id()) > 0;
    }
    if (was_playing) publish();
  });
  server.on_error([](tao::Connection& c, const tao::Error& e) {
    tao::logger()->warn("{}: {}", c.name(), e.message); // e.g. a table that fails verification
  });
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("game server listening on {}\n"
             "play with: tao-game-client --host {} --port {} --name alice --moves 3\n",
             server.local_endpoint().to_string(), f.host == "0.0.0.0" ? "127.0.0.1" : f.host,
             server.port());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
