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
  backlog_waiters_.clear();
}

void Loop::backlog_done(std::size_t bytes) {
  if (bytes == 0) return;
  const std::size_t left = backlog_.fetch_sub(bytes) - bytes;
  if (left <= backlog_limit_ / 2 && backlog_waiting_.load()) post_backlog_resume();
}

void Loop::wait_backlog(std::weak_ptr<TcpConnection> c) {
  backlog_waiters_.push_back(std::move(c));
  backlog_waiting_.store(true);
  // A worker that drained the backlog between the caller's look and the flag saw no waiter.
  if (backlog_.load() <= backlog_limit_ / 2) post_backlog_resume();
}

void Loop::post_backlog_resume() {
  if (backlog_resume_posted_.exchange(true)) return;
  asio::post(ctx_, [this] { resume_backlog(); });
}

void Loop::resume_backlog() {
  backlog_resume_posted_.store(false);
  std::vector<std::weak_ptr<TcpConnection>> waiters;
  waiters.swap(backlog_waiters_);
  backlog_waiting_.store(false);
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    if (backlog_full()) {
      // Full again. First in line now: the one that stopped in the middle of its read (normally
      // the only one that joined the line meanwhile); then the rest, in their order.
      backlog_waiters_.insert(
          backlog_waiters_.end(),
          std::make_move_iterator(waiters.begin() + static_cast<std::ptrdiff_t>(i)),
          std::make_move_iterator(waiters.end()));
      backlog_waiting_.store(true);
      if (backlog_.load() <= backlog_limit_ / 2) post_backlog_resume();
      return;
    }
    if (auto c = waiters[i].lock()) c->resume_after_backlog();
  }
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

LoopPool::LoopPool(std::size_t n, std::size_t read_chunk, std::size_t backlog_limit) {
  loops_.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    loops_.push_back(std::make_unique<Loop>(i, read_chunk, backlog_limit));
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
