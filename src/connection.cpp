#include <tao/connection.hpp>

namespace tao {

std::string Endpoint::to_string() const {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

ConnectionId next_connection_id() noexcept {
  static std::atomic<ConnectionId> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Connection::Connection(ConnectionId id, std::string_view role, Endpoint local, Endpoint remote,
                       std::shared_ptr<const Codec> codec)
    : id_(id), role_(role), local_(std::move(local)), remote_(std::move(remote)),
      codec_(std::move(codec)) {}

Connection::~Connection() = default;

std::string Connection::name() const {
  std::string out(role_);
  out += '#';
  out += std::to_string(id_);
  out += ' ';
  out += remote_.to_string();
  return out;
}

namespace detail {
Buffer& scratch_buffer() noexcept {
  // Encoding happens on the caller's thread into this reused buffer, so a write allocates nothing
  // once the buffer has grown to the largest message.
  thread_local Buffer buffer(256);
  return buffer;
}
} // namespace detail

std::error_code Connection::write_frame(MessageType type,
                                        detail::FunctionRef<void(Buffer&)> payload) {
  Buffer& b = detail::scratch_buffer();
  b.clear();
  if (auto ec = codec_->encode(type, payload, b)) return ec;
  auto ec = write_encoded(b.view());
  if (b.capacity() > (1u << 20)) b = Buffer(256); // do not pin one huge message's memory
  return ec;
}

std::error_code Connection::write(const RawMessage& msg) {
  return write_raw(msg.type, ByteView(msg.payload));
}

std::error_code Connection::write_raw(MessageType type, ByteView payload) {
  return write_frame(type, [payload](Buffer& b) { b.append(payload); });
}

std::error_code Connection::close_reason() const {
  std::lock_guard lock(mutex_);
  return close_reason_;
}

void Connection::set_close_reason(std::error_code ec) {
  std::lock_guard lock(mutex_);
  if (!close_reason_) close_reason_ = ec;
}

void Connection::set_context(const std::string& key, std::any value) {
  std::lock_guard lock(mutex_);
  if (!context_) context_ = std::make_unique<ContextMap>();
  (*context_)[key] = std::move(value);
}

std::any Connection::context(const std::string& key) const {
  std::lock_guard lock(mutex_);
  if (!context_) return {};
  auto it = context_->find(key);
  return it == context_->end() ? std::any{} : it->second;
}

bool Connection::erase_context(const std::string& key) {
  std::lock_guard lock(mutex_);
  return context_ && context_->erase(key) > 0;
}

} // namespace tao
