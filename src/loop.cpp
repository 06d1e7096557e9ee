#include "loop.hpp"

#include <tao/log.hpp>

namespace tao::detail {

void Loop::start() {
  guard_.emplace(ctx_.get_executor());
  thread_ = std::thread([this] {
    for (;;) {
      try {
        ctx_.run();
        return;
      } catch (const std::exception& e) {
        // Handlers catch user exceptions themselves; this is a last resort that keeps the loop up.
        logger()->error("loop {}: unexpected exception: {}", index_, e.what());
      }
    }
  });
}

Loop::~Loop() {
  // Normally stopped already. A loop destroyed from its own thread cannot join itself; that is a
  // bug elsewhere, so say so instead of terminating.
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      logger()->error("loop {} destroyed from its own thread", index_);
      thread_.detach();
    } else {
      stop();
    }
  }
}

void Loop::stop() {
  guard_.reset();
  ctx_.stop();
  if (thread_.joinable()) thread_.join();
  timers_.clear();
  ctx_.restart();
  ctx_.poll();
}

LoopPool::LoopPool(std::size_t n, std::size_t read_chunk) {
  loops_.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    loops_.push_back(std::make_unique<Loop>(i, read_chunk));
}

void LoopPool::start() {
  for (auto& l : loops_)
    l->start();
}

void LoopPool::stop() {
  for (auto& l : loops_)
    l->stop();
}

bool LoopPool::in_loop_thread() const noexcept {
  for (const auto& l : loops_)
    if (l->in_this_thread()) return true;
  return false;
}

} // namespace tao::detail
