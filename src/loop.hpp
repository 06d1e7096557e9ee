// Event loops: one io_context per thread. A connection lives on one loop for its whole life.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/worker_pool.hpp>

#include "metrics.hpp"
#include "read_wait.hpp"
#include "timer_service.hpp"

namespace tao::detail {

namespace asio = boost::asio;

class TcpConnection;

class Loop {
public:
  /// `backlog_limit`: ConnectionOptions::max_worker_backlog, shared evenly by `workers` (0 for
  /// a loop whose handlers never go to workers).
  Loop(std::size_t index, std::size_t read_chunk, std::size_t backlog_limit, std::size_t workers)
      : index_(index), ctx_(1), scratch_(read_chunk), timers_(ctx_),
        backlog_share_(workers == 0 || backlog_limit == 0
                           ? 0
                           : std::max<std::size_t>(backlog_limit / workers, 1)),
        backlogs_(workers), backlog_count_(workers) {}
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  asio::io_context& context() noexcept { return ctx_; }
  std::size_t index() const noexcept { return index_; }
  bool in_this_thread() const noexcept { return ctx_.get_executor().running_in_this_thread(); }
  /// For ReadWait::start on this loop's sockets.
  ReadWaitReactor reactor() const noexcept { return reactor_; }
  /// The loop's shared read buffer: connections read into it, so an idle one holds none.
  std::vector<char>& scratch() noexcept { return scratch_; }

  /// Write queues of this loop's connections borrow their buffer here when they start filling
  /// and give it back when they are sent and empty, so a connection answering one message at a
  /// time neither holds a buffer while idle nor allocates and frees one per reply. Freeing them
  /// one by one made glibc give the memory back to the kernel and fault it in again (an madvise
  /// and dozens of page faults per hundred 4 KiB replies, measured). Any thread: workers write
  /// too (their buffers are given back by the loop that sent them), so the cache has a mutex,
  /// taken once per buffer, not per message.
  /// Leaves `into` (empty) with room for at least `want` bytes.
  void take_write_buffer(std::vector<char>& into, std::size_t want) {
    if (into.capacity() < want) {
      std::lock_guard lock(spare_mutex_);
      if (!spare_writes_.empty()) {
        spare_write_bytes_ -= spare_writes_.back().capacity();
        into.swap(spare_writes_.back());
        spare_writes_.pop_back();
      }
    }
    into.reserve(want);
  }
  /// Takes `b`'s memory, leaving it empty with none; kept if the cache has room, else freed.
  /// The cache holds at most max_spare_writes buffers and max_spare_write_bytes in all.
  void give_write_buffer(std::vector<char>& b) {
    std::vector<char> mine;
    mine.swap(b);
    const std::size_t cap = mine.capacity();
    if (cap == 0) return;
    mine.clear();
    std::lock_guard lock(spare_mutex_);
    if (spare_writes_.size() >= max_spare_writes ||
        spare_write_bytes_ + cap > max_spare_write_bytes)
      return; // freed by mine's destructor (after the unlock: declared before the guard)
    if (spare_writes_.capacity() == 0) spare_writes_.reserve(max_spare_writes);
    spare_write_bytes_ += cap;
    spare_writes_.push_back(std::move(mine));
  }
  static constexpr std::size_t max_spare_writes = 256;
  static constexpr std::size_t max_spare_write_bytes = 1u << 20;
  /// Called by each read wake-up of a connection on this loop (loop thread only): true if the
  /// previous read wake-up was this same connection's, a cheap sign that the loop is serving it
  /// alone for now. Compares addresses only (never dereferenced), so a closed connection leaves
  /// nothing behind; a new connection at a freed one's address may be taken for it once.
  bool note_reader(const void* c) noexcept {
    const bool same = last_reader_ == c;
    last_reader_ = c;
    return same;
  }
  TimerService& timers() noexcept { return timers_; }
  const TimerService& timers() const noexcept { return timers_; }
  /// Written by this loop's thread only; read by metrics snapshots.
  ThreadCounters& counters() noexcept { return counters_; }
  const ThreadCounters& counters() const noexcept { return counters_; }

  /// The open connections on this loop (loop thread only), for per-loop sweeps such as
  /// schedule_every and heartbeat checks: one timer per loop, not one per connection.
  const std::vector<TcpConnection*>& members() const noexcept { return members_; }
  /// Adds c; returns its position, which remove_member needs.
  std::size_t add_member(TcpConnection* c) {
    members_.push_back(c);
    return members_.size() - 1;
  }
  /// Removes the member at `pos` by moving the last one there; returns the moved member (or null)
  /// so it can update its position.
  TcpConnection* remove_member(std::size_t pos) {
    TcpConnection* moved = nullptr;
    if (pos + 1 != members_.size()) {
      moved = members_.back();
      members_[pos] = moved;
    }
    members_.pop_back();
    return moved;
  }

  /// A reply that a worker handler writes while more of its connection's messages wait for the
  /// worker may be held back for the last of them to send with it (one send instead of a loop
  /// wake-up per reply), but for this long at most: the loop sends what is still held then.
  static constexpr auto reply_hold = std::chrono::milliseconds(1);
  /// Loop thread: from now on, every reply_hold, sends the replies `c` holds back, until it has
  /// no task left on the workers (TcpConnection::sweep_replies).
  void watch_replies(std::shared_ptr<TcpConnection> c);
  /// Loop thread: from now on, every reply_hold, checks whether `c`'s parked read needs a kick
  /// (TcpConnection::sweep_read), until it says no more.
  void watch_read(std::shared_ptr<TcpConnection> c);
  /// Loop thread: flushes c once the loop has run what is queued now (the reads of this round).
  void defer_flush(std::shared_ptr<TcpConnection> c);
  /// Any other thread (a worker that wrote a reply): flushes c on the loop, soon. Requests made
  /// while one is pending share one posted operation, and a plain TCP read that the loop starts
  /// meanwhile runs them first (run_requested_flushes): replies made on a worker go out before
  /// the loop reads on, instead of queueing behind the reads it has already collected.
  void request_flush(std::shared_ptr<TcpConnection> c);
  /// Loop thread: runs the flushes requested so far; one atomic load when there are none. A
  /// flush that fails (out of memory) is logged here, not thrown into the caller's read.
  void run_requested_flushes() noexcept {
    if (requests_.pending.load(std::memory_order_acquire)) run_requested_flushes_logged();
  }
  /// Sweeps made so far (one per reply_hold while anything is watched).
  std::uint32_t sweeps() const noexcept { return sweeps_; }

  /// Queues a task for a worker from this loop's thread. A sleeping worker is woken once, by a
  /// handler posted behind the completions that are ready now: a batch of messages read in one
  /// wake-up costs one wake-up of the worker, and the loop is not preempted by it per message.
  std::error_code submit_to(WorkerPool& pool, std::uint64_t key, WorkerPool::Task task) {
    bool must_wake = false;
    auto ec = pool.submit_deferred(key, std::move(task), must_wake);
    if (must_wake) {
      wakes_.push_back(pool.worker_for(key));
      if (!wake_posted_) {
        wake_posted_ = true;
        asio::post(ctx_, [this, &pool] {
          wake_posted_ = false;
          for (std::size_t w : wakes_)
            pool.wake(w);
          wakes_.clear();
        });
      }
    }
    return ec;
  }

  // Worker backlog (ConnectionOptions::max_worker_backlog): bytes of messages read on this loop
  // and handed to worker `w` whose handlers have not finished. Kept per worker, each with its
  // share of the limit, so that a worker whose handlers are slow or stuck stops only the
  // connections it serves (their messages could not be handled anyway), not the loop.
  /// Over all workers (metrics).
  std::size_t worker_backlog() const noexcept {
    std::size_t n = 0;
    for (std::size_t w = 0; w < backlog_count_; ++w)
      n += backlogs_[w].bytes.load(std::memory_order_relaxed);
    return n;
  }
  /// Loop thread: true while worker w's backlog, with `unsent` bytes about to join it, is at
  /// its share (never without a limit): its connections stop reading.
  bool backlog_full(std::size_t w, std::size_t unsent) const noexcept {
    return backlog_share_ != 0 &&
           backlogs_[w].bytes.load(std::memory_order_relaxed) + unsent >= backlog_share_;
  }
  /// Loop thread: connections of worker w wait for its backlog to drain. Another of its
  /// connections that would read now waits behind them (in turn), or those that have just been
  /// served, whose peers answer first, would take all the room each time it drains.
  bool backlog_queued(std::size_t w) const noexcept { return !backlogs_[w].waiters.empty(); }
  /// Loop thread, before the batch goes to the pool.
  void backlog_add(std::size_t w, std::size_t bytes) noexcept {
    if (bytes) backlogs_[w].bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  /// Any thread (the worker, after a batch's handlers): when worker w's backlog falls to half
  /// its share, the connections that stopped for it read again, on the loop.
  void backlog_done(std::size_t w, std::size_t bytes);
  /// Loop thread: `c` stopped reading for worker w's backlog (with `unsent` bytes of its own
  /// about to join it); resume_after_backlog() is called when the backlog has drained to half,
  /// in the order the connections stopped.
  void wait_backlog(std::size_t w, std::weak_ptr<TcpConnection> c, std::size_t unsent);

  void start();
  /// Stops the loop and joins its thread, then runs what completions are left (sockets and
  /// timers are closed by then, so these are only cancellations) so that nothing they own leaks.
  void stop();

private:
  std::size_t index_;
  // Concurrency hint 1: only this loop's thread runs it, so a post from the loop itself goes to
  // its private queue instead of waking the reactor (an epoll_ctl per post otherwise).
  mutable asio::io_context ctx_{1};
  ReadWaitReactor reactor_ = read_wait_reactor(ctx_);
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
  std::vector<char> scratch_;
  std::mutex spare_mutex_;                      // guards spare_writes_, spare_write_bytes_
  std::vector<std::vector<char>> spare_writes_; // see take_write_buffer
  std::size_t spare_write_bytes_ = 0;
  TimerService timers_; // after ctx_: destroyed before it
  std::vector<TcpConnection*> members_;
  std::vector<std::size_t> wakes_; // workers to wake after this batch (loop thread only)
  bool wake_posted_ = false;
  std::vector<std::shared_ptr<TcpConnection>> reply_watch_; // loop thread; see watch_replies
  std::vector<std::shared_ptr<TcpConnection>> reply_scan_;  // loop thread; see sweep
  std::vector<std::shared_ptr<TcpConnection>> read_watch_;  // loop thread; see watch_read
  std::vector<std::shared_ptr<TcpConnection>> flush_list_, flush_scan_; // see defer_flush
  bool flush_posted_ = false;
  // See request_flush. Written by other threads, so on a cache line of its own.
  struct alignas(64) FlushRequests {
    std::mutex mutex;
    std::vector<std::shared_ptr<TcpConnection>> list; // guarded by mutex
    // Guarded by mutex: an operation that takes the list is queued, or its poster is about to
    // queue it (and clears this again if that fails).
    bool posted = false;
    std::atomic<bool> pending{false}; // set (under mutex) whenever the list is not empty
    /// Under mutex, with the list not empty: marks it pending; true when the caller is the one
    /// that must post the take (then call post_request_take after unlocking).
    bool mark_pending_locked() {
      pending.store(true, std::memory_order_release);
      return !std::exchange(posted, true);
    }
  };
  FlushRequests requests_;
  std::vector<std::shared_ptr<TcpConnection>> request_spare_; // loop thread: storage for a pass
  /// With requests_.posted just set by this thread: posts the operation that takes the list.
  void post_request_take();
  void take_requested_flushes(bool posted);
  void run_requested_flushes_logged() noexcept;
  void post_deferred_flushes();
  void run_deferred_flushes();
  std::uint32_t sweeps_ = 0;
  asio::steady_timer sweep_timer_{ctx_}; // after ctx_: destroyed before it
  bool sweep_armed_ = false;
  void arm_sweep();
  void sweep(); // every reply_hold while anything is watched: held replies, parked reads
  const void* last_reader_ = nullptr; // see note_reader
  ThreadCounters counters_;
  const std::size_t backlog_share_; // per worker; 0: no limit
  struct alignas(64) Backlog {      // one per worker, each on its own cache line
    std::atomic<std::size_t> bytes{0};
    // Set by the loop when a connection waits, read by the worker that drains the backlog; with
    // `bytes` (both seq_cst where they meet) one of the two always sees the other.
    std::atomic<bool> waiting{false};
    std::atomic<bool> resume_posted{false};
    std::vector<std::weak_ptr<TcpConnection>> waiters; // loop thread, oldest first
    std::vector<std::weak_ptr<TcpConnection>> spare;   // empty; its storage, for the next pass
  };
  std::vector<Backlog> backlogs_;
  const std::size_t backlog_count_;
  void post_backlog_resume(std::size_t w);
  void resume_backlog(std::size_t w);
};

class LoopPool {
public:
  LoopPool(std::size_t n, std::size_t read_chunk, std::size_t backlog_limit, std::size_t workers);
  void start();
  void stop();
  /// Round robin.
  Loop& next() noexcept {
    return *loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
  }
  Loop& at(std::size_t i) noexcept { return *loops_[i]; }
  const Loop& at(std::size_t i) const noexcept { return *loops_[i]; }
  std::size_t size() const noexcept { return loops_.size(); }
  bool in_loop_thread() const noexcept;

private:
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<std::size_t> next_{0};
};

} // namespace tao::detail
