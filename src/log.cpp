#include <tao/log.hpp>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace tao {
namespace {

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger; // guarded by g_mutex

spdlog::level::level_enum parse_level(std::string_view name) {
  auto lvl = spdlog::level::from_str(std::string(name));
  // from_str answers "off" for names it does not know; only accept "off" when asked for.
  if (lvl == spdlog::level::off && name != "off")
    throw std::invalid_argument("unknown log level: " + std::string(name));
  return lvl;
}

std::shared_ptr<spdlog::logger> make_default() {
  auto l = std::make_shared<spdlog::logger>(
      "tao", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  l->set_level(spdlog::level::info);
  if (const char* env = std::getenv("TAO_LOG_LEVEL"); env && *env) {
    try {
      l->set_level(parse_level(env));
    } catch (const std::invalid_argument&) {
      l->warn("ignoring TAO_LOG_LEVEL={}: not a level name", env);
    }
  }
  return l;
}

} // namespace

std::shared_ptr<spdlog::logger> logger() {
  std::lock_guard lock(g_mutex);
  if (!g_logger) g_logger = make_default();
  return g_logger;
}

void set_logger(std::shared_ptr<spdlog::logger> l) {
  std::lock_guard lock(g_mutex);
  g_logger = l ? std::move(l) : make_default();
}

void set_log_level(std::string_view level) { logger()->set_level(parse_level(level)); }

} // namespace tao
