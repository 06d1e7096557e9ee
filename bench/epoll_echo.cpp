// tao-bench-epoll-echo: the floor tao is measured against: a minimal epoll echo server, the way
// the fastest C libraries work. One thread per --threads, each with its own SO_REUSEPORT
// listener and epoll set; level-triggered, non-blocking sockets.
//
// An idle connection holds no buffer: each thread reads into one shared 64 KiB buffer and sends
// the bytes straight back. Only what the kernel does not take is kept, and reading that
// connection stops until it is sent, so a peer that does not read cannot grow memory.
//
// --broadcast (one thread): the chat-style baseline for the broadcast case. TLV frames are cut
// from each connection's input and every complete frame goes to every connection, the sender
// included. A receiver's backlog is not bounded here: the load generator's window bounds it.
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

constexpr std::size_t kHeader = 8;              // TLV: int32 type, uint32 length
constexpr std::uint32_t kMaxPayload = 8u << 20; // as tao's and Go Tao's default

struct Conn {
  bool open = false;
  std::vector<char> in;  // broadcast: the start of an incomplete frame
  std::vector<char> out; // bytes the kernel has not taken yet
  std::size_t out_sent = 0;
  std::size_t index = 0; // broadcast: position in Loop::open_
};

class Loop {
public:
  Loop(int listen_fd, int stop_fd, bool broadcast)
      : listen_(listen_fd), stop_(stop_fd), epoll_(epoll_create1(EPOLL_CLOEXEC)),
        broadcast_(broadcast) {
    add(listen_fd, EPOLLIN);
    add(stop_fd, EPOLLIN); // never read: it stays readable and wakes every loop
  }
  ~Loop() {
    for (std::size_t fd = 0; fd < conns_.size(); ++fd)
      if (conns_[fd].open) ::close(static_cast<int>(fd));
    ::close(epoll_);
  }

  void run() {
    std::vector<epoll_event> events(1024);
    for (;;) {
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_) return;
        if (fd == listen_) {
          accept_all();
        } else if (conns_[static_cast<std::size_t>(fd)].open) {
          if (events[i].events & EPOLLOUT) flush(fd);
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(fd);
        }
      }
      for (int fd : doomed_)
        close_fd(fd);
      doomed_.clear();
    }
  }

private:
  void add(int fd, std::uint32_t events) { ctl(EPOLL_CTL_ADD, fd, events); }
  void ctl(int op, int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(epoll_, op, fd, &ev);
  }

  void accept_all() {
    for (;;) {
      const int fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return; // EAGAIN, or out of descriptors: try again on the next wake-up
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (conns_.size() <= static_cast<std::size_t>(fd))
        conns_.resize(static_cast<std::size_t>(fd) + 1);
      Conn& c = conns_[static_cast<std::size_t>(fd)];
      c.open = true;
      if (broadcast_) {
        c.index = open_.size();
        open_.push_back(fd);
      }
      add(fd, EPOLLIN);
    }
  }

  void on_readable(int fd) {
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    if (!c.out.empty() && !broadcast_) return; // echo: not reading until the backlog is sent
    const auto n = ::recv(fd, buf_.data(), buf_.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return doom(fd);
    if (broadcast_) return broadcast_frames(fd, static_cast<std::size_t>(n));
    if (!send_or_keep(fd, buf_.data(), static_cast<std::size_t>(n))) return doom(fd);
    if (!c.out.empty()) ctl(EPOLL_CTL_MOD, fd, EPOLLOUT); // stop reading until it drains
  }

  // Sends what the kernel takes now and keeps the rest for EPOLLOUT; false on an error.
  bool send_or_keep(int fd, const char* p, std::size_t n) {
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    if (c.out.empty()) {
      const auto sent = ::send(fd, p, n, MSG_NOSIGNAL);
      if (sent < 0 && errno != EAGAIN && errno != EINTR) return false;
      const auto k = sent < 0 ? 0 : static_cast<std::size_t>(sent);
      p += k;
      n -= k;
    }
    c.out.insert(c.out.end(), p, p + n);
    return true;
  }

  void flush(int fd) {
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    while (c.out_sent < c.out.size()) {
      const auto sent =
          ::send(fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && errno == EAGAIN) return;
      if (sent < 0) return doom(fd);
      c.out_sent += static_cast<std::size_t>(sent);
    }
    std::vector<char>().swap(c.out); // give the memory back: idle connections hold nothing
    c.out_sent = 0;
    ctl(EPOLL_CTL_MOD, fd, EPOLLIN);
  }

  void broadcast_frames(int fd, std::size_t n) {
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    // Without a partial frame pending, frames are cut straight from the shared buffer.
    if (!c.in.empty()) c.in.insert(c.in.end(), buf_.data(), buf_.data() + n);
    const char* data = c.in.empty() ? buf_.data() : c.in.data();
    const std::size_t size = c.in.empty() ? n : c.in.size();
    std::size_t whole = 0;
    while (size - whole >= kHeader) {
      std::uint32_t len = 0;
      std::memcpy(&len, data + whole + 4, 4); // little-endian on every machine this runs on
      if (len > kMaxPayload) return doom(fd);
      if (size - whole - kHeader < len) break;
      whole += kHeader + len;
    }
    if (whole > 0) {
      for (int to : open_) {
        Conn& d = conns_[static_cast<std::size_t>(to)];
        const bool idle = d.out.empty();
        if (!send_or_keep(to, data, whole))
          doom(to);
        else if (idle && !d.out.empty())
          ctl(EPOLL_CTL_MOD, to, EPOLLIN | EPOLLOUT);
      }
    }
    if (c.in.empty())
      c.in.assign(data + whole, data + size);
    else
      c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(whole));
  }

  // Closing while the broadcast list is walked would reorder it: close after the batch.
  void doom(int fd) { doomed_.push_back(fd); }

  void close_fd(int fd) {
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    if (!c.open) return;
    if (broadcast_) {
      open_[c.index] = open_.back();
      conns_[static_cast<std::size_t>(open_.back())].index = c.index;
      open_.pop_back();
    }
    c = Conn{};
    ::close(fd); // also removes it from the epoll set
  }

  int listen_;
  int stop_;
  int epoll_;
  bool broadcast_;
  std::vector<Conn> conns_; // by descriptor
  std::vector<int> open_;
  std::vector<int> doomed_;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
};

int listen_on(const std::string& host, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one); // one listener per thread
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    throw std::runtime_error("--host must be an IPv4 address: " + host);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, SOMAXCONN) != 0)
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             std::strerror(errno));
  return fd;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"minimal epoll echo server (benchmark baseline)"};
  std::string host = "127.0.0.1";
  std::uint16_t port = 12347;
  std::size_t threads = 1;
  bool broadcast = false;
  app.add_option("--host", host, "IPv4 address to listen on")->capture_default_str();
  app.add_option("--port", port, "TCP port (0: an ephemeral one, printed)")->capture_default_str();
  app.add_option("--threads", threads, "threads, one epoll set and listener each")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
  app.add_flag("--broadcast", broadcast, "send every TLV frame to every connection (one thread)");
  CLI11_PARSE(app, argc, argv);
  if (broadcast && threads != 1) {
    std::fprintf(stderr, "epoll echo server: --broadcast needs --threads 1\n");
    return 2;
  }

  // The signals are taken by sigwait() below, so the loops never see them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::vector<int> listeners;
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      listeners.push_back(listen_on(host, port));
      if (port == 0) { // an ephemeral port: the first listener's, shared by the others
        sockaddr_in bound{};
        socklen_t len = sizeof bound;
        if (::getsockname(listeners.back(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
          throw std::runtime_error(std::string("getsockname: ") + std::strerror(errno));
        port = ntohs(bound.sin_port);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epoll echo server: %s\n", e.what());
    return 1;
  }
  std::vector<std::jthread> loops;
  for (int fd : listeners)
    loops.emplace_back([fd, stop_fd, broadcast] { Loop(fd, stop_fd, broadcast).run(); });
  std::printf("epoll %s server listening on %s:%u\n", broadcast ? "broadcast" : "echo",
              host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  const std::uint64_t one = 1;
  if (::write(stop_fd, &one, sizeof one) != sizeof one) return 1;
  loops.clear(); // joins
  for (int fd : listeners)
    ::close(fd);
  return 0;
}
