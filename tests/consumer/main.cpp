// A program built against the installed tao package: an echo round trip on 127.0.0.1.
#include <cstdio>
#include <future>

#include <tao/tao.hpp>

struct Text {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Text decode(tao::ByteView in) { return {in.str()}; }
};

int main() {
  tao::Server server({.host = "127.0.0.1", .port = 0, .io_threads = 1, .workers = 1});
  server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
  server.start();
  tao::Client client({.host = "127.0.0.1", .port = server.port()});
  std::promise<std::string> got;
  client.handle<Text>([&](tao::Connection&, const Text& m) { got.set_value(m.text); });
  if (client.connect()) return 1;
  client.write(Text{"installed"});
  auto f = got.get_future();
  if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return 2;
  std::printf("echoed: %s\n", f.get().c_str());
  return 0;
}
