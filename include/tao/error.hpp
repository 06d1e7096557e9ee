// Error codes of the tao category, returned by every fallible call on the hot path.
// Thread safety: everything here is immutable and safe from any thread.
#pragma once

#include <string>
#include <system_error>

namespace tao {

/// Errors tao reports through std::error_code (category "tao").
enum class errc {
  ok = 0,
  frame_too_large,       ///< A frame's length field is over the codec's maximum payload.
  malformed_frame,       ///< A frame header or delimiter the codec cannot parse.
  truncated_frame,       ///< The peer closed the connection in the middle of a frame.
  decode_failed,         ///< A registered message type failed to decode its payload.
  bad_heartbeat,         ///< A heartbeat frame whose payload is shorter than 8 bytes.
  unknown_message_type,  ///< No handler and no on_message for this type (frame discarded).
  handler_exception,     ///< A user handler threw; the connection is closed.
  send_queue_full,       ///< The outgoing queue is at its high-water mark; nothing was queued.
  not_connected,         ///< The client has no connection (yet, or any more).
  connection_closed,     ///< The connection is closed or closing; the write was not queued.
  connection_not_found,  ///< unicast() to an id the server does not know.
  connect_timeout,       ///< The client did not connect within its connect timeout.
  too_many_connections,  ///< Refused: the server is at max_connections.
  rejected,              ///< on_connect returned false.
  stopped,               ///< The server or client is stopping.
  closed_by_peer,        ///< The peer closed the connection.
  closed_locally,        ///< close() was called on this side.
  close_timeout,         ///< A graceful close did not get all sent (and acknowledged) in time.
  heartbeat_timeout,     ///< Nothing arrived from the peer within the heartbeat timeout.
  tls_handshake_failed,  ///< The TLS handshake failed (verification, protocol, plaintext peer...).
  tls_handshake_timeout, ///< The peer did not finish the TLS handshake in time.
  unsupported_message_type, ///< The codec cannot write this type (a codec with one fixed type).
};

/// The category of tao::errc ("tao").
const std::error_category& error_category() noexcept;

/// Makes tao::errc values convertible to std::error_code.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// What on_error receives: a code to branch on and a text to log.
struct Error {
  std::error_code code; ///< A tao::errc or a system error; compare with tao::errc values.
  std::string message;  ///< A human-readable reason, with details (sizes, bytes in hex, ...).
};

} // namespace tao

// A standard-library hook, not part of the reference:
/// \cond
template <> struct std::is_error_code_enum<tao::errc> : std::true_type {};
/// \endcond
