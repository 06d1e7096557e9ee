// Chat client: sends each line from stdin, prints every message received.
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat client"};
  example::Flags f;
  example::add_common_flags(app, f, false);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  return example::run_chat_client(f, std::nullopt);
}
