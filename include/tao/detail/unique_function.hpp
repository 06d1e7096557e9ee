// A move-only std::function (C++23's move_only_function is not in C++20), for tasks that own
// messages and connections.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace tao::detail {

template <class Sig> class UniqueFunction;

template <class R, class... Args> class UniqueFunction<R(Args...)> {
public:
  UniqueFunction() noexcept = default;
  UniqueFunction(std::nullptr_t) noexcept {} // NOLINT(google-explicit-constructor)
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
           std::is_invocable_r_v<R, std::remove_cvref_t<F>&, Args...>)
      UniqueFunction(F&& f) // NOLINT(google-explicit-constructor)
      : impl_(std::make_unique<Impl<std::remove_cvref_t<F>>>(std::forward<F>(f))) {}

  UniqueFunction(UniqueFunction&&) noexcept = default;
  UniqueFunction& operator=(UniqueFunction&&) noexcept = default;

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  R operator()(Args... a) { return impl_->call(std::forward<Args>(a)...); }

private:
  struct Base {
    virtual ~Base() = default;
    virtual R call(Args... a) = 0;
  };
  template <class F> struct Impl final : Base {
    explicit Impl(F&& f) : fn(std::move(f)) {}
    explicit Impl(const F& f) : fn(f) {}
    R call(Args... a) override { return fn(std::forward<Args>(a)...); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

} // namespace tao::detail
