#include <tao/error.hpp>

namespace tao {
namespace {

class Category final : public std::error_category {
public:
  const char* name() const noexcept override { return "tao"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::ok: return "success";
    case errc::frame_too_large: return "frame larger than the maximum payload";
    case errc::malformed_frame: return "malformed frame";
    case errc::truncated_frame: return "peer closed the connection in the middle of a frame";
    case errc::decode_failed: return "message payload failed to decode";
    case errc::bad_heartbeat: return "heartbeat payload shorter than 8 bytes";
    case errc::unknown_message_type: return "no handler for message type";
    case errc::handler_exception: return "handler threw an exception";
    case errc::send_queue_full: return "send queue full (high-water mark reached)";
    case errc::not_connected: return "not connected";
    case errc::connection_closed: return "connection closed";
    case errc::connection_not_found: return "no connection with that id";
    case errc::connect_timeout: return "connect timed out";
    case errc::too_many_connections: return "too many connections";
    case errc::rejected: return "connection rejected by on_connect";
    case errc::stopped: return "stopped";
    case errc::closed_by_peer: return "closed by peer";
    case errc::closed_locally: return "closed locally";
    case errc::close_timeout:
      return "graceful close timed out before all was sent and acknowledged";
    case errc::heartbeat_timeout: return "heartbeat timeout";
    case errc::tls_handshake_failed: return "TLS handshake failed";
    case errc::tls_handshake_timeout: return "TLS handshake timed out";
    case errc::unsupported_message_type: return "the codec cannot write this message type";
    }
    return "unknown tao error";
  }
};

} // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

} // namespace tao
