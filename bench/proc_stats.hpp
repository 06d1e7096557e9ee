// What the load generator reads about the server process from /proc (Linux only; the one place
// in bench/ that knows /proc). Reading another process's counters, rather than asking it, keeps
// the servers identical to what users run and lets every server be measured the same way.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <unistd.h>

namespace bench {

/// CPU time (user + system, all threads) the process has used, in nanoseconds; -1 if unknown.
/// /proc/<pid>/stat counts in clock ticks (usually 10 ms), so measure windows of a second or more.
inline std::int64_t process_cpu_ns(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field)
    fields >> skip;
  std::int64_t utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return -1;
  const auto ticks = sysconf(_SC_CLK_TCK);
  return (utime + stime) * (1'000'000'000 / ticks);
}

/// Resident set size of the process in KiB (VmRSS in /proc/<pid>/status); -1 if unknown.
inline std::int64_t process_rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      std::int64_t kib = -1;
      in >> kib;
      return kib;
    }
    in.ignore(4096, '\n');
  }
  return -1;
}

} // namespace bench
