#include "timer_service.hpp"

#include <boost/asio/post.hpp>

#include <tao/log.hpp>

namespace tao::detail {

TimerService::TimerService(boost::asio::io_context& ctx) : ctx_(ctx), timer_(ctx) {}

TimerService::~TimerService() = default;

TimerId TimerService::add(TimePoint due, Duration interval, Callback cb) {
  bool post = false;
  TimerId id = 0;
  {
    std::lock_guard lock(mutex_);
    std::uint32_t i;
    if (free_.empty()) {
      i = static_cast<std::uint32_t>(nodes_.size());
      nodes_.emplace_back();
    } else {
      i = free_.back();
      free_.pop_back();
    }
    Node& n = nodes_[i];
    n.due = due;
    n.interval = interval.count() > 0 ? interval : Duration::zero();
    n.start = due - n.interval;
    n.k = 1;
    n.seq = next_seq_++;
    n.cb = std::move(cb);
    n.state = State::pending;
    heap_push(i);
    active_.fetch_add(1, std::memory_order_relaxed);
    id = (static_cast<TimerId>(n.gen) << 32) | (static_cast<TimerId>(i) + 1);
    if (due < armed_) {
      if (ctx_.get_executor().running_in_this_thread()) {
        rearm();
      } else if (!rearm_posted_) {
        rearm_posted_ = true;
        post = true;
      }
    }
  }
  if (post) {
    boost::asio::post(ctx_, [this] {
      std::lock_guard lock(mutex_);
      rearm_posted_ = false;
      rearm();
    });
  }
  return id;
}

bool TimerService::cancel(TimerId id) {
  Callback dead; // destroyed after the lock is released
  std::lock_guard lock(mutex_);
  Node* n = find(id);
  if (!n) return false;
  switch (n->state) {
  case State::pending: {
    heap_remove(n->heap_pos);
    dead = std::move(n->cb);
    release(static_cast<std::uint32_t>((id & 0xffffffffu) - 1));
    return true;
  }
  case State::due: // taken out to run in this batch, not started: it will not run
    n->state = State::cancelled;
    return true;
  case State::running:
    // Cancelled from inside its own callback (or while it runs on the loop): a periodic timer
    // will not be rescheduled; a one-shot one has already fired.
    n->state = State::cancelled;
    return n->interval.count() > 0;
  case State::cancelled:
  case State::free: return false;
  }
  return false;
}

bool TimerService::pending(TimerId id) const {
  std::lock_guard lock(mutex_);
  const Node* n = find(id);
  return n && (n->state == State::pending || n->state == State::due ||
               (n->state == State::running && n->interval.count()));
}

void TimerService::clear() {
  std::vector<Callback> dead; // destroyed without the lock
  {
    std::lock_guard lock(mutex_);
    for (std::uint32_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].state == State::free) continue;
      dead.push_back(std::move(nodes_[i].cb));
      release(i); // bumps the generation: ids from before clear() stay stale
    }
    heap_.clear();
    armed_ = TimePoint::max();
  }
  timer_.cancel();
}

TimerService::Node* TimerService::find(TimerId id) {
  const auto low = id & 0xffffffffu;
  if (low == 0 || low > nodes_.size()) return nullptr;
  Node& n = nodes_[low - 1];
  if (n.gen != static_cast<std::uint32_t>(id >> 32) || n.state == State::free) return nullptr;
  return &n;
}

const TimerService::Node* TimerService::find(TimerId id) const {
  return const_cast<TimerService*>(this)->find(id);
}

void TimerService::release(std::uint32_t index) {
  Node& n = nodes_[index];
  n.state = State::free;
  ++n.gen; // a stale id never matches a reused slot
  n.cb = nullptr;
  free_.push_back(index);
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void TimerService::heap_push(std::uint32_t index) {
  heap_.push_back(index);
  nodes_[index].heap_pos = static_cast<std::uint32_t>(heap_.size() - 1);
  sift_up(nodes_[index].heap_pos);
}

void TimerService::heap_remove(std::uint32_t pos) {
  const std::uint32_t last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  place(pos, last);
  sift_up(pos);
  sift_down(nodes_[last].heap_pos);
}

void TimerService::sift_up(std::uint32_t pos) {
  const std::uint32_t index = heap_[pos];
  while (pos > 0) {
    const std::uint32_t parent = (pos - 1) / 2;
    if (!before(index, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, index);
}

void TimerService::sift_down(std::uint32_t pos) {
  const std::uint32_t index = heap_[pos];
  const auto size = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], index)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, index);
}

void TimerService::rearm() {
  const TimePoint earliest = heap_.empty() ? TimePoint::max() : nodes_[heap_[0]].due;
  if (earliest == armed_) return;
  armed_ = earliest;
  if (earliest == TimePoint::max()) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(earliest); // cancels the previous wait, whose handler then sees an error
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_timer();
  });
}

void TimerService::on_timer() {
  const TimePoint now = Clock::now();
  {
    std::lock_guard lock(mutex_);
    armed_ = TimePoint::max();
    while (!heap_.empty() && nodes_[heap_[0]].due <= now) {
      const std::uint32_t i = heap_[0];
      heap_remove(0);
      Node& n = nodes_[i];
      n.state = State::due;
      fired_.push_back(Fired{i, n.due, std::move(n.cb)});
    }
  }
  // Callbacks run without the lock, so they may schedule and cancel (themselves included).
  for (Fired& f : fired_) {
    {
      // An earlier callback of this batch may have cancelled this one: then it does not run.
      std::lock_guard lock(mutex_);
      if (nodes_[f.index].state != State::due) continue;
      nodes_[f.index].state = State::running;
    }
    try {
      f.cb(f.due);
    } catch (const std::exception& e) {
      logger()->error("timer callback threw: {}", e.what());
    } catch (...) {
      logger()->error("timer callback threw");
    }
  }
  {
    std::lock_guard lock(mutex_);
    const TimePoint after = Clock::now();
    for (Fired& f : fired_) {
      Node& n = nodes_[f.index];
      if (n.state == State::running && n.interval.count() > 0) {
        // Keep the phase: the k-th firing is due at start + k * interval. Periods that passed
        // entirely while we were late are skipped rather than fired in a burst.
        ++n.k;
        TimePoint next = n.start + n.interval * static_cast<Duration::rep>(n.k);
        if (next <= after) {
          n.k = static_cast<std::uint64_t>((after - n.start) / n.interval) + 1;
          next = n.start + n.interval * static_cast<Duration::rep>(n.k);
        }
        n.due = next;
        n.seq = next_seq_++;
        n.cb = std::move(f.cb);
        n.state = State::pending;
        heap_push(f.index);
      } else {
        release(f.index);
      }
    }
    rearm();
  }
  fired_.clear(); // destroys one-shot callbacks outside the lock
}

} // namespace tao::detail
