// Helpers of the reliability tests (soak, stop under load, close from any thread, fd
// exhaustion): process resource counters and sanitizer detection. Linux only (/proc).
#pragma once

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include <tao/tao.hpp>

#include "support.hpp"

namespace test {

/// Calls fn(name) for each open descriptor of this process, the directory's own excluded; false
/// when the directory cannot be opened (no descriptor left, for one).
template <typename Fn> bool for_each_open_fd(Fn&& fn) {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return false;
  const int own = ::dirfd(d);
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.' && std::atoi(e->d_name) != own) fn(static_cast<const char*>(e->d_name));
  ::closedir(d);
  return true;
}

/// Open file descriptors of this process, or -1 when they cannot be listed.
inline int open_fds() {
  int n = 0;
  return for_each_open_fd([&](const char*) { ++n; }) ? n : -1;
}

/// The fewest descriptors seen over about 200 ms: the baseline to compare with while other
/// threads run. A single count can catch short-lived descriptors of other threads, such as the
/// pipe pairs the sanitizer runtimes open and close to probe memory (seen in CI: an I/O thread's
/// pair counted in a baseline taken right after Server::start).
inline int settled_open_fds() {
  int fewest = open_fds();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    fewest = std::min(fewest, open_fds());
  }
  return fewest;
}

/// Each open descriptor and what it points at ("3 -> socket:[123]"), for failure messages.
inline std::string describe_fds() {
  std::string out;
  for_each_open_fd([&](const char* name) {
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    out += std::string(name) + " -> " + (n > 0 ? std::string(target, n) : "?") + "\n";
  });
  return out;
}

/// Resident set size in bytes (from /proc/self/statm), after giving freed memory back.
inline std::size_t resident_bytes() {
  ::malloc_trim(0);
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

/// Raises the soft limit on open files to at least `want` (up to the hard limit); returns the
/// soft limit now in force.
inline rlim_t raise_fd_limit(rlim_t want) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < want) {
    r.rlim_cur = std::min(want, r.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur;
}

/// A soak message: session number, sequence number on that connection, padding.
struct SoakMsg {
  static constexpr tao::MessageType type = 2;
  std::uint32_t session = 0;
  std::int64_t n = 0;
  std::string pad;
  void encode(tao::Buffer& out) const {
    out.append_le(session);
    out.append_le(n);
    out.append(pad);
  }
  static std::optional<SoakMsg> decode(tao::ByteView in) {
    if (in.size() < 12) return std::nullopt;
    return SoakMsg{in.read_le<std::uint32_t>(0), in.read_le<std::int64_t>(4),
                   std::string(in.begin() + 12, in.end())};
  }
};

inline std::string soak_frame(std::uint32_t session, std::int64_t n, std::size_t pad) {
  tao::Buffer b;
  SoakMsg{session, n, std::string(pad, 'p')}.encode(b);
  return test::frame(SoakMsg::type, b.view().str());
}

/// Seconds from the environment variable `name`, else `fallback`.
inline std::chrono::seconds seconds_from_env(const char* name, std::chrono::seconds fallback) {
  if (const char* v = std::getenv(name)) {
    const long s = std::strtol(v, nullptr, 10);
    if (s > 0) return std::chrono::seconds(s);
  }
  return fallback;
}

} // namespace test
