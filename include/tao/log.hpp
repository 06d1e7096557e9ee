// The library's logger: spdlog, logger name "tao". Level from TAO_LOG_LEVEL (trace, debug, info,
// warn, error, critical, off) at first use, else info; ServerOptions/ClientOptions::log_level
// and set_log_level() change it later. Connection lifecycle is logged at debug,
// trouble at warn/error, nothing per message at info or above.
// Thread safety: all functions are safe from any thread.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace tao {

/// The logger tao writes to.
std::shared_ptr<spdlog::logger> logger();
/// Replaces it (e.g. with one that has your own sinks). A null pointer restores the default.
void set_logger(std::shared_ptr<spdlog::logger> l);
/// Sets the level by name ("debug", "warn", ...). Throws std::invalid_argument for unknown names.
void set_log_level(std::string_view level);

} // namespace tao
