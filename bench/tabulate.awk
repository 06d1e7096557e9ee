# Turns scripts/bench.sh's results.txt (one line of key=value pairs per run) into markdown tables:
# the median of each figure over the rounds, and every server's figures as ratios to the raw Asio
# and raw epoll servers of the same case. Only successful runs (status=ok) count in a median; a
# server with failed runs shows "(ok/runs ok)" next to its name. Portable awk (Debian's mawk).

function parse(i, eq) {
  split("", kv)
  for (i = 1; i <= NF; i++) {
    eq = index($i, "=")
    if (eq > 1) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
  }
}

{
  parse()
  s = kv["suite"]; c = kv["case"]; v = kv["server"]
  if (!((s, c) in seen_case)) { seen_case[s, c] = 1; cases[s, ++ncases[s]] = c }
  if (!((s, c, v) in seen_server)) { seen_server[s, c, v] = 1; servers[s, c, ++nservers[s, c]] = v }
  runs[s, c, v]++
  if (kv["status"] != "ok") next
  k = ++ok[s, c, v]
  for (m in kv) val[s, c, v, m, k] = kv[m]
}

# Median of metric m over the successful runs; "" when there are none.
function med(s, c, v, m, n, i, j, t, a) {
  n = ok[s, c, v] + 0
  if (n == 0 || !((s, c, v, m, 1) in val)) return ""
  for (i = 1; i <= n; i++) a[i] = val[s, c, v, m, i] + 0
  for (i = 2; i <= n; i++) {
    t = a[i]
    for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
    a[j + 1] = t
  }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function ratio(x, base) { return (x == "" || base == "" || base <= 0 || x < 0) ? "–" : sprintf("%.2f", x / base) }

# 1234567 -> 1,234,567
function int_(x, s, out) {
  if (x == "" || x < 0) return "–"
  s = sprintf("%.0f", x)
  out = ""
  while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
  return s out
}

function scale(x, f) { return (x == "" || x < 0) ? x : x * f }

function fix(x, d) { return (x == "" || x < 0) ? "–" : sprintf("%." d "f", x) }

function name(s, c, v) { return ok[s, c, v] + 0 == runs[s, c, v] ? v : v " (" ok[s, c, v] + 0 "/" runs[s, c, v] " ok)" }

function cpu_pct(s, c, v) { return fix(med(s, c, v, "server_cpu_pct"), 0) " / " fix(med(s, c, v, "client_cpu_pct"), 0) }

function pingpong(s, i, j, c, v, A, E, x) {
  s = "pingpong"
  if (!ncases[s]) return
  print "### Pingpong: echo of TLV frames (connections × payload × frames in flight per connection)"
  print ""
  print "| case | server | msg/s | × asio | × epoll | MiB/s | p50 µs | p99 µs | p99 × asio | p999 µs | server CPU ns/msg | CPU × asio | CPU × epoll | CPU % server / client |"
  print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  for (i = 1; i <= ncases[s]; i++) {
    c = cases[s, i]
    for (j = 1; j <= nservers[s, c]; j++) {
      v = servers[s, c, j]
      x = med(s, c, v, "ops_per_s")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, name(s, c, v), int_(x),
        ratio(x, med(s, c, "asio", "ops_per_s")), ratio(x, med(s, c, "epoll", "ops_per_s")),
        fix(med(s, c, v, "mib_per_s"), 1), fix(med(s, c, v, "p50_us"), 0), fix(med(s, c, v, "p99_us"), 0),
        ratio(med(s, c, v, "p99_us"), med(s, c, "asio", "p99_us")), fix(med(s, c, v, "p999_us"), 0),
        int_(med(s, c, v, "server_cpu_ns_per_op")),
        ratio(med(s, c, v, "server_cpu_ns_per_op"), med(s, c, "asio", "server_cpu_ns_per_op")),
        ratio(med(s, c, v, "server_cpu_ns_per_op"), med(s, c, "epoll", "server_cpu_ns_per_op")), cpu_pct(s, c, v)
    }
  }
  print ""
}

function memory(s, i, j, c, v, x) {
  s = "memory"
  if (!ncases[s]) return
  print "### Memory: server RSS growth per idle connection (each exchanged one 16 B frame)"
  print ""
  print "| connections | server | bytes per connection | × asio | × epoll |"
  print "|---|---|--:|--:|--:|"
  for (i = 1; i <= ncases[s]; i++) {
    c = cases[s, i]
    for (j = 1; j <= nservers[s, c]; j++) {
      v = servers[s, c, j]
      x = med(s, c, v, "rss_per_conn_b")
      printf "| %s | %s | %s | %s | %s |\n", int_(c), name(s, c, v), int_(x),
        ratio(x, med(s, c, "asio", "rss_per_conn_b")), ratio(x, med(s, c, "epoll", "rss_per_conn_b"))
    }
  }
  print ""
}

function broadcast(s, i, j, c, v, x) {
  s = "broadcast"
  if (!ncases[s]) return
  print "### Broadcast: one sender, every frame to every client (sender included), 16 frames in flight"
  print ""
  print "| clients | server | deliveries/s | × epoll | p50 µs | p99 µs | server CPU ns/delivery | CPU × epoll | CPU % server / client |"
  print "|---|---|--:|--:|--:|--:|--:|--:|--:|"
  for (i = 1; i <= ncases[s]; i++) {
    c = cases[s, i]
    for (j = 1; j <= nservers[s, c]; j++) {
      v = servers[s, c, j]
      x = med(s, c, v, "ops_per_s")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", int_(c), name(s, c, v), int_(x),
        ratio(x, med(s, c, "epoll", "ops_per_s")), fix(med(s, c, v, "p50_us"), 0), fix(med(s, c, v, "p99_us"), 0),
        int_(med(s, c, v, "server_cpu_ns_per_op")),
        ratio(med(s, c, v, "server_cpu_ns_per_op"), med(s, c, "epoll", "server_cpu_ns_per_op")), cpu_pct(s, c, v)
    }
  }
  print ""
}

function accept_rate(s, i, j, c, v, x) {
  s = "accept"
  if (!ncases[s]) return
  print "### Accept rate: connect, one 16 B echo, close (connectors working at once)"
  print ""
  print "| connectors | server | connections/s | × asio | × epoll | p99 µs connect→echo | server CPU µs/conn | CPU × asio | CPU % server / client |"
  print "|---|---|--:|--:|--:|--:|--:|--:|--:|"
  for (i = 1; i <= ncases[s]; i++) {
    c = cases[s, i]
    for (j = 1; j <= nservers[s, c]; j++) {
      v = servers[s, c, j]
      x = med(s, c, v, "ops_per_s")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, name(s, c, v), int_(x),
        ratio(x, med(s, c, "asio", "ops_per_s")), ratio(x, med(s, c, "epoll", "ops_per_s")),
        fix(med(s, c, v, "p99_us"), 0), fix(scale(med(s, c, v, "server_cpu_ns_per_op"), 0.001), 1),
        ratio(med(s, c, v, "server_cpu_ns_per_op"), med(s, c, "asio", "server_cpu_ns_per_op")), cpu_pct(s, c, v)
    }
  }
  print ""
}

# One line per target of issue 4, for the cases that ran.
function target(text, x, limit, at_least) {
  if (x == "–") return
  printf "- %s: %s (%s)\n", text, x, (at_least ? x + 0 >= limit : x + 0 <= limit) ? "met" : "MISSED"
}

function targets(s, i, c, v, worst, r, mem, tao, at) {
  print "### Targets (issue 4)"
  print ""
  s = "pingpong"
  for (i = 1; i <= ncases[s]; i++) {
    c = cases[s, i]
    if (c == "100x16Bx1")
      target("tao-loop msg/s ÷ asio at " c " (≥ 0.9)",
        ratio(med(s, c, "tao-loop", "ops_per_s"), med(s, c, "asio", "ops_per_s")), 0.9, 1)
    if (c == "1000x4KiBx16")
      target("tao-loop server CPU/msg ÷ asio at " c " (≤ 1.0)",
        ratio(med(s, c, "tao-loop", "server_cpu_ns_per_op"), med(s, c, "asio", "server_cpu_ns_per_op")), 1.0, 0)
    if (c == "100x16Bx1" || c == "1000x4KiBx16")
      target("tao-worker msg/s ÷ asio at " c " (≥ 0.6)",
        ratio(med(s, c, "tao-worker", "ops_per_s"), med(s, c, "asio", "ops_per_s")), 0.6, 1)
  }
  split("tao-loop tao-worker", tao, " ")
  for (v = 1; v <= 2; v++) {
    worst = ""
    for (i = 1; i <= ncases[s]; i++) {
      c = cases[s, i]
      r = ratio(med(s, c, tao[v], "p99_us"), med(s, c, "asio", "p99_us"))
      if (r != "–" && (worst == "" || r + 0 > worst + 0)) { worst = r; at = c }
    }
    if (worst != "") target(tao[v] " p99 ÷ asio, worst case (" at ", ≤ 1.5 everywhere)", worst, 1.5, 0)
  }
  for (i = 1; i <= ncases["memory"]; i++) {
    c = cases["memory", i]
    mem = med("memory", c, "tao-loop", "rss_per_conn_b")
    if (mem != "") target("tao-loop bytes per idle connection at " c " (≤ 1024)", sprintf("%.0f", mem), 1024, 0)
  }
  print ""
}

END {
  pingpong()
  memory()
  broadcast()
  accept_rate()
  targets()
}
