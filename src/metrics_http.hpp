// The metrics HTTP endpoint (GET /metrics, Prometheus text format) on a thread and io_context of
// its own, so a slow or hostile scraper never touches the I/O loops. Beast is compiled only in
// metrics_http.cpp.
// Thread safety: construct and destroy from one thread; port() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <tao/metrics.hpp>

namespace tao::detail {

class MetricsHttpServer {
public:
  /// Produces the response body; runs on the endpoint's thread.
  using Render = std::function<std::string()>;

  /// Binds and starts serving. Throws std::system_error if the address cannot be resolved or
  /// bound, std::invalid_argument for unusable options.
  MetricsHttpServer(const MetricsHttpOptions& options, Render render);
  /// Stops serving, closes every HTTP connection and joins the thread.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  std::uint16_t port() const noexcept;

  struct Impl; // (in metrics_http.cpp)

private:
  std::shared_ptr<Impl> impl_;
};

} // namespace tao::detail
