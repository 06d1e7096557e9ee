// A move-only std::function (C++23's move_only_function is not in C++20), for tasks that own
// messages and connections. Callables up to 48 bytes are stored inline, so the common task (a
// connection pointer and a small message) costs no allocation, and so no cross-thread free when
// a worker runs what a loop submitted.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace tao::detail {

template <class Sig> class UniqueFunction;

template <class R, class... Args> class UniqueFunction<R(Args...)> {
  static constexpr std::size_t inline_size = 48;

public:
  UniqueFunction() noexcept = default;
  UniqueFunction(std::nullptr_t) noexcept {} // NOLINT(google-explicit-constructor)
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
           std::is_invocable_r_v<R, std::remove_cvref_t<F>&, Args...>)
      UniqueFunction(F&& f) { // NOLINT(google-explicit-constructor)
    using T = std::remove_cvref_t<F>;
    if constexpr (fits_inline<T>()) {
      ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
      ops_ = &inline_ops<T>;
    } else {
      *reinterpret_cast<T**>(storage_) = new T(std::forward<F>(f));
      ops_ = &heap_ops<T>;
    }
  }

  UniqueFunction(UniqueFunction&& o) noexcept : ops_(o.ops_) {
    if (ops_) ops_->move(o.storage_, storage_);
    o.ops_ = nullptr;
  }
  UniqueFunction& operator=(UniqueFunction&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_;
      if (ops_) ops_->move(o.storage_, storage_);
      o.ops_ = nullptr;
    }
    return *this;
  }
  UniqueFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  ~UniqueFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  R operator()(Args... a) { return ops_->call(storage_, std::forward<Args>(a)...); }

private:
  struct Ops {
    R (*call)(void*, Args...);
    void (*move)(void* from, void* to) noexcept; // leaves `from` destroyed
    void (*destroy)(void*) noexcept;
  };

  template <class T> static constexpr bool fits_inline() {
    return sizeof(T) <= inline_size && alignof(T) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<T>;
  }

  template <class T>
  static constexpr Ops inline_ops{
      [](void* p, Args... a) -> R { return (*static_cast<T*>(p))(std::forward<Args>(a)...); },
      [](void* from, void* to) noexcept {
        ::new (to) T(std::move(*static_cast<T*>(from)));
        static_cast<T*>(from)->~T();
      },
      [](void* p) noexcept { static_cast<T*>(p)->~T(); }};

  template <class T>
  static constexpr Ops heap_ops{
      [](void* p, Args... a) -> R { return (**static_cast<T**>(p))(std::forward<Args>(a)...); },
      [](void* from, void* to) noexcept { *static_cast<T**>(to) = *static_cast<T**>(from); },
      [](void* p) noexcept { delete *static_cast<T**>(p); }};

  void reset() noexcept {
    if (ops_) ops_->destroy(storage_);
    ops_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char storage_[inline_size];
  const Ops* ops_ = nullptr;
};

} // namespace tao::detail
