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
  for (Backlog& b : backlogs_) // a resume still queued finds no one to read (the loop is done)
    b.waiters.clear();
  ctx_.restart();
  ctx_.poll();
  reply_watch_.clear();
  reply_scan_.clear();
  flush_list_.clear();
  flush_scan_.clear();
  std::vector<std::shared_ptr<TcpConnection>> requested;
  {
    std::lock_guard lock(requests_.mutex);
    requested.swap(requests_.list);
    requests_.posted = false;
    requests_.pending.store(false);
  }
  requested.clear(); // (outside the lock: the last reference may go)
  request_spare_.clear();
  read_watch_.clear();
}

void Loop::backlog_done(std::size_t w, std::size_t bytes) {
  if (bytes == 0) return;
  Backlog& b = backlogs_[w];
  const std::size_t left = b.bytes.fetch_sub(bytes) - bytes;
  if (left <= backlog_share_ / 2 && b.waiting.load()) post_backlog_resume(w);
}

void Loop::wait_backlog(std::size_t w, std::weak_ptr<TcpConnection> c, std::size_t unsent) {
  Backlog& b = backlogs_[w];
  b.waiters.push_back(std::move(c));
  b.waiting.store(true);
  // A worker that drained the backlog between the caller's look and the flag saw no waiter.
  if (b.bytes.load() + unsent <= backlog_share_ / 2) post_backlog_resume(w);
}

void Loop::post_backlog_resume(std::size_t w) {
  if (backlogs_[w].resume_posted.exchange(true)) return;
  asio::post(ctx_, [this, w] { resume_backlog(w); });
}

void Loop::resume_backlog(std::size_t w) {
  Backlog& b = backlogs_[w];
  b.resume_posted.store(false);
  // The pass works on its own list (a connection it resumes may join the line again), and the
  // two lists trade storage from pass to pass instead of allocating.
  std::vector<std::weak_ptr<TcpConnection>> waiters;
  waiters.swap(b.spare);
  waiters.swap(b.waiters);
  b.waiting.store(false);
  std::size_t next = 0;
  // Whatever stops the pass (the backlog is full again, or a read threw), the connections not
  // resumed yet go back in line: first those that joined it during the pass (normally just the
  // one that stopped in the middle of its read), then the rest, in their order.
  struct Requeue {
    Loop& loop;
    std::size_t w;
    std::vector<std::weak_ptr<TcpConnection>>& waiters;
    std::size_t& next;
    ~Requeue() {
      Backlog& b = loop.backlogs_[w];
      if (next < waiters.size()) {
        // Only connections already resumed can have joined (a resume reads just its own
        // connection), so they fit, without allocating, in the slots the pass is done with.
        const std::size_t joined = b.waiters.size();
        const auto at = [this](std::size_t i) {
          return waiters.begin() + static_cast<std::ptrdiff_t>(i);
        };
        if (joined <= next) {
          std::move(b.waiters.begin(), b.waiters.end(), at(next - joined));
          waiters.erase(waiters.begin(), at(next - joined));
          b.waiters.clear();
          b.waiters.swap(waiters);
        } else {
          b.waiters.insert(b.waiters.end(), std::make_move_iterator(at(next)),
                           std::make_move_iterator(waiters.end()));
        }
        b.waiting.store(true);
        if (b.bytes.load() <= loop.backlog_share_ / 2) loop.post_backlog_resume(w);
      }
      waiters.clear();
      if (b.spare.capacity() < waiters.capacity()) b.spare.swap(waiters);
    }
  } requeue{*this, w, waiters, next};
  while (next < waiters.size() && !backlog_full(w, 0)) {
    auto c = waiters[next++].lock();
    if (!c) continue;
    try {
      c->resume_after_backlog();
    } catch (...) { // (out of memory) it is no longer paused and reads nothing: try again later
      asio::post(ctx_, [c] { c->resume_after_backlog(); });
      throw;
    }
  }
}

void Loop::defer_flush(std::shared_ptr<TcpConnection> c) {
  flush_list_.push_back(std::move(c));
  post_deferred_flushes();
}

void Loop::post_deferred_flushes() {
  if (flush_posted_) return;
  asio::post(ctx_, [this] { run_deferred_flushes(); });
  flush_posted_ = true; // (only once posted: a post that threw leaves it to the next defer)
}

void Loop::run_deferred_flushes() {
  flush_posted_ = false;
  flush_scan_.swap(flush_list_);
  std::size_t i = 0;
  try {
    for (; i < flush_scan_.size(); ++i)
      flush_scan_[i]->run_deferred_flush();
  } catch (...) { // (out of memory) the connections after the one that threw go first next time
    flush_list_.insert(
        flush_list_.begin(),
        std::make_move_iterator(flush_scan_.begin() + static_cast<std::ptrdiff_t>(i) + 1),
        std::make_move_iterator(flush_scan_.end()));
    flush_scan_.clear();
    if (!flush_list_.empty()) post_deferred_flushes();
    throw;
  }
  flush_scan_.clear();
}

void Loop::request_flush(std::shared_ptr<TcpConnection> c) {
  bool post = false;
  {
    std::lock_guard lock(requests_.mutex);
    requests_.list.push_back(std::move(c));
    post = requests_.mark_pending_locked();
  }
  if (post) post_request_take();
}

void Loop::post_request_take() {
  try {
    asio::post(ctx_, [this] { take_requested_flushes(true); });
  } catch (...) { // (out of memory) the next request posts, and reads take the list meanwhile
    std::lock_guard lock(requests_.mutex);
    requests_.posted = false;
    throw;
  }
}

void Loop::take_requested_flushes(bool posted) {
  // A pass of its own (storage kept from pass to pass): what the flushes run may request more.
  std::vector<std::shared_ptr<TcpConnection>> scan;
  scan.swap(request_spare_);
  {
    std::lock_guard lock(requests_.mutex);
    if (posted) requests_.posted = false; // later requests post again
    scan.swap(requests_.list);
    requests_.pending.store(false, std::memory_order_relaxed);
  }
  std::size_t i = 0;
  try {
    for (; i < scan.size(); ++i)
      scan[i]->run_deferred_flush();
  } catch (...) { // (out of memory) the connections after the one that threw go first next time
    bool post = false;
    {
      std::lock_guard lock(requests_.mutex);
      requests_.list.insert(
          requests_.list.begin(),
          std::make_move_iterator(scan.begin() + static_cast<std::ptrdiff_t>(i) + 1),
          std::make_move_iterator(scan.end()));
      if (!requests_.list.empty()) post = requests_.mark_pending_locked();
    }
    if (post) post_request_take();
    throw;
  }
  scan.clear();
  if (request_spare_.capacity() < scan.capacity()) request_spare_.swap(scan);
}

void Loop::run_requested_flushes_logged() noexcept {
  try {
    take_requested_flushes(false);
  } catch (const std::exception& e) {
    logger()->error("loop {}: sending replies requested from other threads: {}", index_, e.what());
  } catch (...) {
    logger()->error("loop {}: sending replies requested from other threads failed", index_);
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

LoopPool::LoopPool(std::size_t n, std::size_t read_chunk, std::size_t backlog_limit,
                   std::size_t workers) {
  loops_.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    loops_.push_back(std::make_unique<Loop>(i, read_chunk, backlog_limit, workers));
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
