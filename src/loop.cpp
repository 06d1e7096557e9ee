#include "loop.hpp"

#include <tao/log.hpp>

#include "tcp_connection.hpp"

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
  sweep_timer_.cancel();
  ctx_.restart();
  ctx_.poll();
  reply_watch_.clear();
  reply_scan_.clear();
  read_watch_.clear();
}

void Loop::watch_replies(std::shared_ptr<TcpConnection> c) {
  reply_watch_.push_back(std::move(c));
  arm_sweep();
}

void Loop::watch_read(std::shared_ptr<TcpConnection> c) {
  read_watch_.push_back(std::move(c));
  arm_sweep();
}

void Loop::arm_sweep() {
  if (sweep_armed_) return;
  sweep_armed_ = true;
  sweep_timer_.expires_after(reply_hold);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    sweep_armed_ = false;
    if (!ec) sweep();
  });
}

void Loop::sweep() {
  // Taken out first: a sweep sends, and what that runs may watch a connection again. Both lists
  // keep their capacity from tick to tick.
  ++sweeps_;
  reply_scan_.swap(reply_watch_);
  for (auto& c : reply_scan_)
    if (c->sweep_replies()) reply_watch_.push_back(std::move(c));
  reply_scan_.clear();
  // A kick only queues the read's completion, so nothing is added to this list meanwhile.
  std::erase_if(read_watch_,
                [](const std::shared_ptr<TcpConnection>& c) { return !c->sweep_read(); });
  if (!reply_watch_.empty() || !read_watch_.empty()) arm_sweep();
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
