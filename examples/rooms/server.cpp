// Multi-room chat. Every connection has a nickname and a room, kept as connection context values
// ("nick", "room"); a line of text goes to the members of the sender's room only (a broadcast to
// a subset). Commands: /nick NAME, /join ROOM, /leave, /rooms, /who, /help.
// Nicknames are unique: a ConcurrentMap from nickname to connection id reserves them.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <vector>

#include "common/example.hpp"

namespace {

const std::string lobby = "lobby";

std::string nick_of(const tao::Connection& c) {
  return c.context_as<std::string>("nick").value_or("?");
}
std::string room_of(const tao::Connection& c) {
  return c.context_as<std::string>("room").value_or("");
}

bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= 20 && std::ranges::all_of(s, [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

// The server is the last member: it is destroyed, and so stopped, before the nickname map its
// callbacks use.
class RoomsServer {
public:
  explicit RoomsServer(const tao::ServerOptions& options) : server_(options) {
    // Each connection's callbacks run one at a time and in order, so its own context needs no
    // lock of ours; other connections' handlers run in parallel and only read it.
    server_.on_connect([this](tao::Connection& c) {
      joined(c);
      return true;
    });
    server_.on_close([this](tao::Connection& c) { left(c); });
    server_.handle<example::Text>(
        [this](tao::Connection& c, const example::Text& m) { line(c, m.text); });
  }

  tao::Server& server() { return server_; }

private:
  void joined(tao::Connection& c) {
    std::string nick = "guest" + std::to_string(c.id());
    nicks_.insert(nick, c.id());
    c.set_context("nick", nick);
    c.set_context("room", lobby);
    say(c, "welcome, " + nick + "! /help lists the commands");
    tell_room(lobby, "* " + nick + " joined #" + lobby);
  }

  void left(tao::Connection& c) {
    const std::string nick = nick_of(c);
    nicks_.erase(nick);
    tell_room(room_of(c), "* " + nick + " left #" + room_of(c), c.id());
  }

  void line(tao::Connection& c, std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
      text.remove_suffix(1);
    if (text.empty()) return;
    if (text[0] != '/') {
      tell_room(room_of(c), "[" + room_of(c) + "] " + nick_of(c) + ": " + std::string(text));
      return;
    }
    const auto space = text.find(' ');
    const std::string_view command = text.substr(0, space);
    const std::string arg(space == text.npos ? std::string_view{} : text.substr(space + 1));
    if (command == "/nick") {
      rename(c, arg);
    } else if (command == "/join") {
      join(c, arg);
    } else if (command == "/leave") {
      if (room_of(c) == lobby) return say(c, "* you are in the lobby already");
      join(c, lobby);
    } else if (command == "/rooms") {
      rooms(c);
    } else if (command == "/who") {
      who(c);
    } else {
      say(c, "* commands: /nick NAME, /join ROOM, /leave (back to the lobby), /rooms, /who; "
             "any other line goes to your room; bye leaves");
    }
  }

  static void say(tao::Connection& c, const std::string& text) { c.write(example::Text{text}); }

  // O(connections) per message: fine for an example; a large server would keep an index from
  // room to connection ids instead of filtering on the context.
  void tell_room(const std::string& room, const std::string& text,
                 tao::ConnectionId except = 0) const {
    const example::Text msg{text};
    server_.for_each_connection([&](const tao::ConnectionPtr& c) {
      if (c->id() != except && room_of(*c) == room) c->write(msg);
    });
  }

  void rename(tao::Connection& c, const std::string& nick) {
    if (!valid_name(nick)) return say(c, "* a nickname is 1 to 20 letters, digits, _ or -");
    const std::string old = nick_of(c);
    if (nick == old) return;
    if (!nicks_.insert_if_absent(nick, c.id())) return say(c, "* nickname " + nick + " is taken");
    nicks_.erase(old);
    c.set_context("nick", nick);
    say(c, "* you are now " + nick);
    tell_room(room_of(c), "* " + old + " is now known as " + nick, c.id());
  }

  void join(tao::Connection& c, const std::string& room) {
    if (!valid_name(room)) return say(c, "* a room name is 1 to 20 letters, digits, _ or -");
    const std::string old = room_of(c);
    if (room == old) return say(c, "* you are in #" + room + " already");
    tell_room(old, "* " + nick_of(c) + " left #" + old, c.id());
    c.set_context("room", room);
    tell_room(room, "* " + nick_of(c) + " joined #" + room);
  }

  void rooms(tao::Connection& c) const {
    std::map<std::string, int> members;
    server_.for_each_connection([&](const tao::ConnectionPtr& conn) { ++members[room_of(*conn)]; });
    std::string text = "* rooms:";
    for (const auto& [room, n] : members)
      if (!room.empty()) text += fmt::format(" #{} ({})", room, n);
    say(c, text);
  }

  void who(tao::Connection& c) const {
    const std::string room = room_of(c);
    std::set<std::string> nicks;
    server_.for_each_connection([&](const tao::ConnectionPtr& conn) {
      if (room_of(*conn) == room) nicks.insert(nick_of(*conn));
    });
    std::string text = "* in #" + room + ":";
    for (const auto& n : nicks)
      text += " " + n;
    say(c, text);
  }

  tao::ConcurrentMap<std::string, tao::ConnectionId> nicks_;
  tao::Server server_;
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tao multi-room chat server"};
  example::Flags f;
  f.zero_workers_means_hardware = true; // the handlers always run on a worker pool
  example::add_common_flags(app, f, true);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::ServerOptions o = example::server_options(f);
  RoomsServer rooms(o);
  tao::Server& server = rooms.server();
  server.stop_on_signals(); // starts it; from here on SIGINT/SIGTERM stop it gracefully
  fmt::print("multi-room chat server listening on {}\n"
             "join with: tao-rooms-client --host {} --port {}\n",
             server.local_endpoint().to_string(), f.host == "0.0.0.0" ? "127.0.0.1" : f.host,
             server.port());
  example::print_metrics_address(server, f);
  std::fflush(stdout);
  return server.run_until_signal();
}
