// The connection over a TCP socket. Reads, decoding, buffers and timers are touched only on its
// loop, so the read path takes no locks; write() from any thread appends to a locked queue.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/connection.hpp>

#include "core.hpp"
#include "read_wait.hpp"
#include "tls.hpp"

namespace tao::detail {

/// A TCP socket bound to its loop's io_context executor rather than the type-erased
/// any_io_executor: 48 bytes smaller, and so is every pending operation's stored executor,
/// which matters with 10,000s of idle connections.
using Socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

class TcpConnection final : public Connection {
public:
  TcpConnection(std::shared_ptr<Core> core, Loop& loop, Socket socket, ConnectionId id,
                Endpoint local, Endpoint remote);
  ~TcpConnection() override;

  /// Registers the connection, runs on_connect, then starts reading. `started(ok)` is called
  /// (on the loop) once on_connect has answered. Call on the connection's loop.
  void start(std::function<void(bool)> started = {});

  std::error_code write_encoded(ByteView frames) override;
  void close() override;
  void abort() override;
  bool is_open() const noexcept override { return open_.load(std::memory_order_acquire); }
  std::size_t queued_bytes() const noexcept override {
    return queued_.load(std::memory_order_relaxed);
  }
  std::size_t pending_tasks() const noexcept override {
    return pending_.load(std::memory_order_relaxed);
  }
  TimerId run_at(TimePoint when, TimerCallback fn) override;
  TimerId run_every(Duration interval, TimerCallback fn) override;
  bool cancel_timer(TimerId id) override;
  bool is_tls() const noexcept override { return tls_ != nullptr; }
  std::string alpn() const override;

  /// Loop thread, every Loop::reply_hold while the loop watches this connection: sends the
  /// replies its worker holds back (see write_encoded). False once no task of the connection is
  /// left on the workers: the loop stops watching it (the last task sends what is still held).
  bool sweep_replies();
  /// Loop thread, every Loop::reply_hold while the loop watches this connection: once it has
  /// been parked (see read_parked_) for read_check_sweeps sweeps, looks (poll) for what no edge
  /// announces behind its last read (FIN, RST, a pending error, urgent data) and, if there is
  /// any, completes its wait so that a read finds it.
  /// False once it is not parked any more, or checked: the loop stops watching it.
  bool sweep_read();
  /// Loop thread: the flush that Loop::defer_flush put off, or that Loop::request_flush asked
  /// for.
  void run_deferred_flush() { flush(); }
  /// Loop thread: the loop's backlog for this connection's worker, for which it stopped
  /// reading, has drained to half (see Loop::wait_backlog): reads again.
  void resume_after_backlog();
  /// Heartbeat sweep, while paused for the backlog: false if it closed the connection because
  /// its peer hung up close_timeout ago.
  bool peer_gone_while_paused(TimePoint now);
  /// Runs a server-wide schedule for this connection (loop thread; skipped unless open).
  void run_scheduled(const std::shared_ptr<const ScheduleCallback>& fn, TimePoint due);
  /// Closes the connection if the peer was silent too long; sends a heartbeat if this side was.
  /// Loop thread.
  void heartbeat_check(TimePoint now);
  /// Position in the loop's member list (loop thread only).
  void set_member_pos(std::size_t pos) noexcept { member_pos_ = pos; }

private:
  enum class State : std::uint8_t { starting, open, closing, closed };
  enum class CloseMode { graceful, abort };

  std::shared_ptr<TcpConnection> self() {
    return std::static_pointer_cast<TcpConnection>(shared_from_this());
  }

  using TlsStream = asio::ssl::stream<Socket>;
  /// What only a TLS connection has, allocated with it: idle plain connections pay one pointer.
  struct Tls {
    Tls(Socket&& socket, asio::ssl::context& context) : stream(std::move(socket), context) {}
    TlsStream stream;
    std::unique_ptr<char[]> buf; // decrypted reads, from the handshake to the destructor
    TimerId handshake_timer = 0;
    std::string alpn; // guarded by wmutex_: set once, after the handshake
  };
  /// What only a closing connection uses, or one waiting for its tasks after the peer's EOF:
  /// allocated when a graceful close has something to wait for (loop thread only).
  struct Closing {
    explicit Closing(asio::io_context& context) : timer(context) {}
    asio::steady_timer timer;   // the close's (or the peer-EOF wait's) deadline, the linger's tick
    TimePoint deadline{};       // a graceful close gives up at this (set when it starts)
    TimePoint last_linger_in{}; // last bytes discarded while lingering
    TimePoint peer_gone_at{};   // seen hung up while paused for the backlog (heartbeat sweep)
  };
  /// Ids of this connection's timers, allocated by its first timer (guarded by wmutex_).
  struct TimerIds {
    std::vector<TimerId> ids;
    std::size_t prune_at = 64;
  };
  /// The TCP socket, under TLS or not.
  Socket& sock() noexcept { return tls_ ? tls_->stream.next_layer() : socket_; }
  /// The close's state, created on first use (loop thread).
  Closing& closing();
  /// closing(), with close_timeout's clock started at `now` unless it already runs: it bounds the
  /// whole graceful close (sending what was queued, the TLS close_notify exchange, the linger).
  Closing& close_clock(TimePoint now);

  // Loop thread only.
  void start_handshake();
  void on_handshake(const boost::system::error_code& ec);
  void open_connection();
  void on_tls_read(const boost::system::error_code& ec, std::size_t n);
  void after_connect(bool accepted);
  /// How the next read is armed after a read wake-up.
  enum class ReadArm : std::uint8_t {
    wait,        ///< wait for readability, re-arming the descriptor (bytes may wait unannounced)
    dry,         ///< the last read found the socket empty (would_block), nothing ran since: queue a
                 ///< wait without re-arming (see ReadWait)
    again,       ///< read again once the loop has run what is queued: the last read got bytes (a
                 ///< short read may have stopped at the peer's FIN or RST, which no new edge
                 ///< announces) or the wake-up's read budget is used up
    after_tasks, ///< the last read got bytes and handed messages to the workers: queue a wait
                 ///< without re-arming, and have the loop's sweep check for a FIN or RST
                 ///< behind those bytes (see read_parked_)
    now,         ///< read at once, in this call (plain TCP; TLS waits as for `wait`)
  };
  void begin_read(ReadArm how = ReadArm::wait);
  friend class ReadWait<TcpConnection>;
  void on_readable(const boost::system::error_code& ec);
  // After a short read that handed messages to the workers (on a loop serving other connections
  // too) the connection waits for an edge, without reading again at once: until their replies go
  // out, the peer has nothing to send, and that read would find the socket empty (a system call
  // per batch; measured). Bytes that arrive later raise an edge; only a FIN or RST that sat
  // behind the bytes read would go unannounced, so the loop's sweep polls a connection still
  // parked 4-5 ms later and kicks its wait if the peer has closed (the close is then seen that
  // late, in that case only). Loop thread only.
  bool read_parked_ = false;
  bool read_watched_ = false;   // in the loop's read watch list
  std::uint32_t parked_at_ = 0; // Loop::sweeps() when parked
  std::uint32_t worker_ = 0;    // core_->workers->worker_for(id()), with workers
  void on_peer_eof();
  void consume(std::size_t n);
  void make_read_room();
  std::size_t parse(const char* data, std::size_t n);
  bool dispatch_frame(const Frame& f, HandlerLaps& laps);
  bool read_blocked();
  enum class Hangup { no, yes, interrupted, failed };
  /// Without reading: has the peer hung up (FIN, RST, a pending error) or is any of `also` set?
  static Hangup poll_hangup(int fd, short also);
  /// The worker that runs this connection's handlers (only with workers).
  std::size_t worker_index() const noexcept { return worker_; }
  void resume_reading(ReadArm how = ReadArm::wait);
  void keep_leftover(const char* data, std::size_t n);
  /// Marks the parsing of freshly read bytes: writes made meanwhile by this connection's own
  /// handlers on the loop are flushed once, when the batch finishes (or the scope ends), instead
  /// of each write posting a flush to the loop's queue; on a loop serving several connections,
  /// that flush joins the round's others (see defers_flush and Loop::defer_flush).
  class ReadBatch {
  public:
    explicit ReadBatch(TcpConnection& c) noexcept;
    ~ReadBatch() { finish(); }
    ReadBatch(const ReadBatch&) = delete;
    ReadBatch& operator=(const ReadBatch&) = delete;
    /// Sends what the batch has queued so far; the batch goes on.
    void flush();
    /// Ends the batch and sends what it queued (see Loop::defer_flush).
    void finish();

  private:
    void send(bool at_end);
    TcpConnection& c_;
    bool outer_;
  };
  /// After a read was parsed: notes the peer's sign of life, sends the batch's replies and arms
  /// the next read.
  void end_read(ReadBatch& batch, ReadArm next);
  /// Whether the replies of the read batch ending now wait for the end of the loop's round.
  bool defers_flush() const noexcept;
  /// Sends the queue: directly on the non-blocking socket while the connection is open, plain
  /// TCP and not paused for its queue, and the kernel takes it all; asynchronously otherwise.
  void flush();
  /// Whether the loop may send with a direct write_some (else an asynchronous write): plain TCP,
  /// open, and not paused for the queue. A close waits for on_written, and only on_written
  /// resumes a read paused for the queue.
  bool may_send_directly() const noexcept {
    return !tls_ && state_ == State::open && !paused_for_send_;
  }
  /// With wmutex_ held and the queue not empty: moves the queue to wsending_ and marks a write
  /// as started (flush() and send_piece() then send it).
  void take_queue_for_sending();
  /// Sends the queue now, in a read batch of a connection its loop serves alone (see
  /// reply_piece in tcp_connection.cpp); a remainder the kernel does not take is written
  /// asynchronously.
  void send_piece();
  /// Sends wsending_ (just taken) with write_some; true when all of it went. Otherwise the rest
  /// is written asynchronously (or the error reported through on_written) and false.
  bool send_taken();
  /// On a worker running this connection's task, under wmutex_, with no flush scheduled and no
  /// write in flight: sends the queue on the non-blocking socket. True when all of it went; else
  /// the rest stays queued, flush_active_ is set and the caller asks the loop for a flush.
  bool send_from_worker_locked();
  /// With wmutex_ held: whether a worker may send the queue itself (plain TCP, no flush scheduled
  /// or write in flight, and a queue small enough; see send_from_worker_locked).
  bool worker_may_send_locked() const noexcept;
  /// With wmutex_ held: if bytes are queued and no flush is scheduled, marks one scheduled
  /// (flush_active_) and returns true; the caller then runs flush() or has the loop run it.
  bool claim_flush_locked() noexcept;
  /// After `buffer` (wsending_, or wpending_ under wmutex_) was sent whole: counts its bytes and
  /// `frames` in `counters`, takes them off queued_, ends a send_queue_full episode once below
  /// resume_reading_at, and gives the buffer back to the loop's spares (or frees it if it is
  /// over keep_write_capacity).
  void sent_whole(ThreadCounters& counters, std::vector<char>& buffer, std::uint32_t frames);
  /// Writes wsending_ from byte `sent` on asynchronously; on_written gets the whole count.
  void start_write(std::size_t sent);
  void on_written(const boost::system::error_code& ec, std::size_t n);
  /// close()/abort() from any thread: refuse writes now, close on the loop.
  void request_close(CloseMode mode);
  void do_close(CloseMode mode, std::error_code reason);
  void finish_close();
  /// After a graceful close's last write: FIN, then read and discard until the peer's EOF.
  void start_linger();
  void on_linger_readable(const boost::system::error_code& ec);
  void linger_tick();
  /// Reads and discards what the peer sent; false if that found its EOF (and closed).
  bool linger_drain();
  std::size_t unacknowledged_bytes();
  void fail(std::error_code ec, const std::string& text);
  /// `bytes`: the message's payload size, counted (with backlog_per_message) in the loop's
  /// worker backlog until its handler has run.
  void submit_task(Task task, std::size_t bytes);
  /// Hands the read batch's tasks (batch_tasks_) to the connection's worker as one pool task.
  void submit_batch();
  /// Runs `tasks` in order on a worker (see submit_batch).
  void run_tasks(std::vector<Task>& tasks, bool sole);

  // Any thread.
  /// Runs fn where this connection's callbacks run for placement `run`: inline when that is this
  /// loop and `may_inline`, else posted to the loop or submitted to the connection's worker.
  void run_callback(Run run, UniqueFunction<void(Connection&)> fn, bool may_inline);
  void report_error(std::error_code ec, std::string text, bool may_inline);
  void task_done() noexcept;
  /// On a worker, after the connection's last queued task: sends replies still held back.
  void send_held_replies() noexcept;
  void handler_threw(const std::string& what);
  /// handler_threw() for a worker's batch, which must go on whatever reporting throws.
  void handler_threw_noexcept(const char* what) noexcept;
  TimerId add_timer(TimePoint due, Duration interval, TimerCallback fn);
  /// Runs a timer's or a schedule's callback where this connection's handlers run, unless the
  /// connection has closed meanwhile; an exception closes the connection as from a handler.
  void run_timer_callback(UniqueFunction<void(Connection&)> fn);
  void cancel_all_timers();
  void on_send_queue_full();

  const std::shared_ptr<Core> core_;
  Loop& loop_;
  // The transport: a TLS stream that owns the socket, or the plain socket. Only the handshake,
  // reading, writing and shutdown differ; everything else is one code path.
  std::unique_ptr<Tls> tls_; // declared before socket_: built from the socket first
  Socket socket_;            // the plain socket (empty under TLS)
  ReadWait<TcpConnection> read_wait_;
  const ConnectionOptions& opts_;

  // Loop thread only.
  std::unique_ptr<std::function<void(bool)>> started_; // until on_connect answers
  std::unique_ptr<char[]> rbuf_; // bytes not yet parsed (null when idle: no read buffer held)
  std::size_t rcap_ = 0;
  std::size_t rbeg_ = 0; // rbuf_[rbeg_, rend_) is unparsed
  std::size_t rend_ = 0;
  std::vector<char> wsending_; // bytes handed to the kernel by the current write
  std::unique_ptr<Closing> closing_;
  std::size_t member_pos_ = static_cast<std::size_t>(-1); // in loop_.members(), while listed
  TimePoint last_in_{};                                   // last complete frame from the peer
  TimePoint last_out_{};                                  // last bytes handed to the kernel
  std::uint64_t unknown_frames_ = 0;
  // The flags are packed together: tens of thousands of idle connections pay for every byte.
  State state_ = State::starting;
  bool reading_ = false; // a read is armed: a wait for readability, a TLS read or a posted re-read
  bool paused_for_send_ = false;
  bool writing_ = false;
  bool notify_close_ = false; // on_connect was reached, so on_close is owed
  bool got_frame_ = false;
  bool handshake_done_ = true; // plain TCP has none
  bool abort_close_ = false;
  bool tls_shutdown_started_ = false;
  bool peer_eof_ = false;
  bool lingering_ = false;
  bool in_read_batch_ = false;      // parsing what was just read: replies are flushed at its end
  bool flush_deferred_ = false;     // a reply was queued in this read batch; its end flushes
  bool sole_reader_ = false;        // the loop's previous read wake-up was this connection's too
  bool reply_watched_ = false;      // in the loop's reply watch (see Loop::watch_replies)
  bool paused_for_backlog_ = false; // waiting in Loop::wait_backlog
  // The messages of the current read batch for the workers, handed over as one pool task when
  // the batch ends (counted in pending_ already). Empty, and without capacity, between batches.
  std::vector<Task> batch_tasks_;
  std::size_t batch_bytes_ = 0; // their sizes, for the loop's worker backlog

  // Shared with writers, timers and workers on other threads.
  bool accepting_ = true; // guarded by wmutex_
  // Guarded by wmutex_: a flush is posted, requested or deferred, or the loop is sending (directly
  // in flush() or asynchronously): while set, a worker does not send itself.
  bool flush_active_ = false;
  // Written under wmutex_ (atomic so that send_held_replies can skip the lock when it is unset):
  // replies this connection's worker task queued without sending them or asking the loop to,
  // because more of the connection's tasks were waiting: the last of them sends them (with its
  // own), or the loop's reply sweep does within Loop::reply_hold.
  std::atomic<bool> replies_held_{false};
  // Guarded by wmutex_: the last flush's size in KiB (at most 128), which an empty queue reserves.
  std::uint8_t last_flush_kib_ = 0;
  std::atomic<bool> open_{true};
  std::atomic<bool> close_requested_{false};
  std::atomic<bool> full_reported_{false};
  std::atomic<bool> worker_sent_{false}; // a worker sent directly: the heartbeat sweep's last_out_
  std::atomic<bool> timers_enabled_{true};
  std::atomic<bool> paused_for_tasks_{false};
  std::atomic<bool> resume_posted_{false};
  std::atomic<bool> close_after_tasks_{false}; // the peer sent EOF: close once tasks have run
  mutable std::mutex wmutex_;                  // the write queue, the timer ids and tls_->alpn
  std::vector<char> wpending_;                 // guarded by wmutex_
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> pending_{0}; // tasks on the worker pool
  // Timers of this connection, cancelled when it closes.
  std::unique_ptr<TimerIds> timer_ids_; // guarded by wmutex_

  // Frame counts for the metrics (32 bits: bounded by send_high_water). wpending_frames_:
  // write_encoded() calls whose bytes are in wpending_ (guarded by wmutex_); wsending_frames_:
  // those in wsending_ (loop thread only).
  std::uint32_t wpending_frames_ = 0;
  std::uint32_t wsending_frames_ = 0;
};

} // namespace tao::detail
