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
/// Thread safety: a view is a value (pointer + size); reading from several threads is safe while
/// the viewed bytes do not change.
class ByteView {
public:
  /// An empty view.
  constexpr ByteView() noexcept = default;
  /// Views `size` bytes at `data`.
  constexpr ByteView(const char* data, std::size_t size) noexcept : data_(data), size_(size) {}
  /// Views `size` bytes at `data`.
  ByteView(const void* data, std::size_t size) noexcept
      : data_(static_cast<const char*>(data)), size_(size) {}
  /// Views the characters of `s`.
  constexpr ByteView(std::string_view s) noexcept : data_(s.data()), size_(s.size()) {}
  /// Views the bytes of `s`.
  ByteView(std::span<const std::byte> s) noexcept
      : data_(reinterpret_cast<const char*>(s.data())), size_(s.size()) {}

  /// The first byte.
  constexpr const char* data() const noexcept { return data_; }
  /// The number of bytes.
  constexpr std::size_t size() const noexcept { return size_; }
  /// True when size() is 0.
  constexpr bool empty() const noexcept { return size_ == 0; }
  /// Iterator to the first byte.
  constexpr const char* begin() const noexcept { return data_; }
  /// Iterator past the last byte.
  constexpr const char* end() const noexcept { return data_ + size_; }
  /// Byte `i` (unchecked: i < size()).
  constexpr char operator[](std::size_t i) const noexcept { return data_[i]; }
  /// The same bytes as a string_view.
  constexpr std::string_view view() const noexcept { return {data_, size_}; }
  /// A copy of the bytes.
  std::string str() const { return std::string(data_, size_); }
  /// The bytes from `pos`, at most `n` of them (clamped to the view, never out of range).
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
  /// Same bytes (not same address).
  friend bool operator==(ByteView a, ByteView b) noexcept { return a.view() == b.view(); }

private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A growable byte buffer that messages encode into.
/// Thread safety: not synchronised; one thread at a time (tao gives each encoding thread its own).
class Buffer {
public:
  /// An empty buffer.
  Buffer() = default;
  /// An empty buffer with room for `reserve` bytes.
  explicit Buffer(std::size_t reserve) { data_.reserve(reserve); }

  /// Appends `n` bytes from `p`.
  void append(const void* p, std::size_t n) {
    const auto* c = static_cast<const char*>(p);
    data_.insert(data_.end(), c, c + n);
  }
  /// Appends the characters of `s`.
  void append(std::string_view s) { append(s.data(), s.size()); }
  /// Appends the bytes `v` views.
  void append(ByteView v) { append(v.data(), v.size()); }
  /// Appends a NUL-terminated string (without its NUL).
  void append(const char* s) { append(std::string_view(s)); }
  /// Appends one byte.
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

  /// The first byte.
  const char* data() const noexcept { return data_.data(); }
  /// The first byte, writable.
  char* data() noexcept { return data_.data(); }
  /// Bytes held.
  std::size_t size() const noexcept { return data_.size(); }
  /// True when size() is 0.
  bool empty() const noexcept { return data_.empty(); }
  /// Drops the bytes, keeps the capacity.
  void clear() noexcept { data_.clear(); }
  /// Truncates, or grows with zero bytes, to `n` bytes.
  void resize(std::size_t n) { data_.resize(n); }
  /// Makes room for `n` bytes in all.
  void reserve(std::size_t n) { data_.reserve(n); }
  /// Bytes it can hold without reallocating.
  std::size_t capacity() const noexcept { return data_.capacity(); }
  /// A view of the bytes; invalidated by anything that changes the buffer.
  ByteView view() const noexcept { return {data_.data(), data_.size()}; }
  /// Same as view().
  operator ByteView() const noexcept { return view(); }
  /// A copy of the bytes.
  std::string str() const { return std::string(data_.begin(), data_.end()); }

private:
  std::vector<char> data_;
};

} // namespace tao
