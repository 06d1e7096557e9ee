// Byte views and growable byte buffers used by codecs and messages.
// Thread safety: a Buffer is not synchronised; use one per thread. ByteView is a read-only view.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tao {

namespace detail {
template <std::integral T> T to_little_endian(T v) noexcept {
  if constexpr (std::endian::native == std::endian::big) {
    T r{};
    for (std::size_t i = 0; i < sizeof(T); ++i)
      r |= static_cast<T>(((static_cast<std::make_unsigned_t<T>>(v) >> (8 * i)) & 0xff)
                          << (8 * (sizeof(T) - 1 - i)));
    return r;
  } else {
    return v;
  }
}
} // namespace detail

/// A read-only view of bytes (a frame's payload). Valid only as long as the bytes it views.
class ByteView {
public:
  constexpr ByteView() noexcept = default;
  constexpr ByteView(const char* data, std::size_t size) noexcept : data_(data), size_(size) {}
  ByteView(const void* data, std::size_t size) noexcept
      : data_(static_cast<const char*>(data)), size_(size) {}
  constexpr ByteView(std::string_view s) noexcept : data_(s.data()), size_(s.size()) {}
  ByteView(std::span<const std::byte> s) noexcept
      : data_(reinterpret_cast<const char*>(s.data())), size_(s.size()) {}

  constexpr const char* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr const char* begin() const noexcept { return data_; }
  constexpr const char* end() const noexcept { return data_ + size_; }
  constexpr char operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr std::string_view view() const noexcept { return {data_, size_}; }
  std::string str() const { return std::string(data_, size_); }
  constexpr ByteView subview(std::size_t pos,
                             std::size_t n = std::string_view::npos) const noexcept {
    if (pos > size_) pos = size_;
    if (n > size_ - pos) n = size_ - pos;
    return {data_ + pos, n};
  }
  /// Reads a little-endian integer at `offset`; the caller checks offset + sizeof(T) <= size().
  template <std::integral T> T read_le(std::size_t offset = 0) const noexcept {
    T v;
    std::memcpy(&v, data_ + offset, sizeof(T));
    return detail::to_little_endian(v);
  }
  friend bool operator==(ByteView a, ByteView b) noexcept { return a.view() == b.view(); }

private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A growable byte buffer that messages encode into.
class Buffer {
public:
  Buffer() = default;
  explicit Buffer(std::size_t reserve) { data_.reserve(reserve); }

  void append(const void* p, std::size_t n) {
    const auto* c = static_cast<const char*>(p);
    data_.insert(data_.end(), c, c + n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void append(ByteView v) { append(v.data(), v.size()); }
  void append(const char* s) { append(std::string_view(s)); }
  void push_back(char c) { data_.push_back(c); }
  /// Appends an integer in little-endian byte order.
  template <std::integral T> void append_le(T v) {
    v = detail::to_little_endian(v);
    append(&v, sizeof v);
  }
  /// Overwrites sizeof(T) bytes at `offset` with `v` in little-endian order.
  template <std::integral T> void write_le_at(std::size_t offset, T v) noexcept {
    v = detail::to_little_endian(v);
    std::memcpy(data_.data() + offset, &v, sizeof v);
  }

  const char* data() const noexcept { return data_.data(); }
  char* data() noexcept { return data_.data(); }
  std::size_t size() const noexcept { return data_.size(); }
  bool empty() const noexcept { return data_.empty(); }
  void clear() noexcept { data_.clear(); }
  void resize(std::size_t n) { data_.resize(n); }
  void reserve(std::size_t n) { data_.reserve(n); }
  std::size_t capacity() const noexcept { return data_.capacity(); }
  ByteView view() const noexcept { return {data_.data(), data_.size()}; }
  operator ByteView() const noexcept { return view(); }
  std::string str() const { return std::string(data_.begin(), data_.end()); }

private:
  std::vector<char> data_;
};

} // namespace tao
