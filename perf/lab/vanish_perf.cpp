// vanish-perf: the performance lab's traffic generator and receiver (one DPDK lcore).
//
//   vanish-perf export   [opts]               pcap (+ Pktgen-DPDK Lua script) of the traffic
//   vanish-perf selftest [opts]               patched inbound ESP opens with EspSa (no EAL)
//   vanish-perf run [EAL args] -- [opts]      one trial: fixed rate or as fast as the DUT takes
//   vanish-perf ndr [EAL args] -- [opts]      RFC 2544 NDR / PDR binary search + latency trial
//
// Ports (EAL vdevs, usually net_memif clients of a DUT that is a separate process): generator
// port 0 faces the DUT's local port, port 1 its fabric port. --dir out sends plaintext workload
// traffic on 0 and receives the DUT's ESP on 1; --dir in sends ESP on 1 and receives plaintext
// on 0. --loopback: send and receive on port 0 (net_ring loopback; the smoke test).
//
// Contracts:
//  - One lcore does everything in bursts of 32: alloc_bulk, fill (template copy + patch, see
//    traffic.hpp), tx_burst, rx_burst, parse, free_bulk. No allocation per packet; the only
//    per-packet crypto is on the receive side: 1 in --lat-sample received packets is inspected
//    for its probe tag (ESP ones decrypted for it), the others only counted.
//  - Loss = packets offered by the rate schedule - packets received. A packet the DUT's port
//    would not take (virtual port ring full) is offered, freed and counted lost, as a NIC's RX
//    overflow would be; in --rate 0 (max) mode it is retried instead and the figure is the
//    receive rate between warm-up and the end.
//  - Output: human lines on stderr, one JSON object per result on stdout. Exit 0 with a
//    result, 2 on bad options or ports that never came up, 3 when a link went down mid-run.
//  - Between trials the lcore sleeps (no busy idle).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "crypto/esp.hpp"
#include "perf/lab/traffic.hpp"

using namespace vanish;
using namespace vanish::perf;
using json = nlohmann::json;

namespace {

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Markers on stderr so that a driver (perf/lab.py) can sample the DUT's CPU use over exactly
// the measuring window.
void marker(const char* what) {
  std::fprintf(stderr, "vanish-perf: %s\n", what);
  std::fflush(stderr);
}

constexpr uint16_t kBurst = 32;
// Rate mode: the most the generator may lag its schedule (and then send back to back): 2 ms of
// packets, half a 2^14-slot memif ring at 4 Mpps. A VM's usual stalls (0.01-1 ms) stay within it
// and are caught up; longer ones are skipped and counted (an NDR trial short by more than 1 %
// fails as generator-limited, as before).
constexpr double kMaxLagSeconds = 2e-3;
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

// DPDK 22.11's memif PMD unmaps a connection's rings on the EAL interrupt thread when the peer
// goes away, with nothing that holds off a burst already running on the lcore: that burst then
// faults. links_up() stops the run before the next burst; this handler covers the one in flight.
// A fault while one of the ports' links is down is that case (the PMD marks the link down
// before it unmaps): report it as the lost link it is and exit 3, as links_up would have. Any
// other fault stays a crash (SA_RESETHAND: returning re-runs the faulting access, default action).
volatile std::sig_atomic_t g_fault_ports = 0;  // ports 0..n-1 are checked; 0 until they are up
void on_fault(int) {
  for (int p = 0; p < g_fault_ports; p++) {
    rte_eth_link l{};
    if (rte_eth_link_get_nowait(uint16_t(p), &l) == 0 && !l.link_status) {
      static const char kMsg[] =
          "vanish-perf: a port's link went down during a burst (the DUT exited or closed its "
          "memif socket); no result\n";
      [[maybe_unused]] ssize_t w = write(2, kMsg, sizeof kMsg - 1);
      _exit(3);
    }
  }
}

struct Opts {
  std::string config = std::string(VANISH_SOURCE_ROOT) + "/examples/node-a.textproto";
  std::string src_wl = "sleep", dst_wl = "httpbin-1";
  std::string dir = "out", format = "vanish", sizes = "64";
  uint32_t flows = 1;
  uint16_t imix_max = 1400;  // as perf/pcapgen.py: 1518 B + ESP/UDP/Geneve exceeds the fabric MTU
  // run / ndr
  double rate = 0;  // packets/s; 0 = as fast as the DUT takes
  double duration = 2, warmup = 0.5;
  double link_timeout = 20;
  uint32_t lat_sample = 16;
  bool loopback = false;
  std::string label;
  // ndr
  double trial = 1, resolution = 0.02, pdr_loss = 0.005, max_rate = 0, latency_load = 0.5;
  double latency_duration = 2;
  double latency_slice = 0.8;  // rt > 0: one latency trial per slice (see latency_trial)
  int rt_priority = 0;         // latency trials under SCHED_FIFO at this priority (0: off)
  // export
  std::string pcap_out, lua_out;
  uint64_t count = 0;
  uint32_t selftest_packets = 2000;
};

std::vector<uint16_t> parse_sizes(const Opts& o) {
  std::vector<uint16_t> v;
  if (o.sizes == "imix") return imix_sizes(o.imix_max);
  size_t p = 0;
  while (p < o.sizes.size()) {
    size_t q = o.sizes.find(',', p);
    if (q == std::string::npos) q = o.sizes.size();
    std::string tok = o.sizes.substr(p, q - p);
    if (tok == "imix") {
      auto im = imix_sizes(o.imix_max);
      v.insert(v.end(), im.begin(), im.end());
    } else if (!tok.empty()) {
      v.push_back(uint16_t(std::stoul(tok)));
    }
    p = q + 1;
  }
  return v;
}

void add_traffic_opts(CLI::App& app, Opts& o) {
  app.add_option("--config", o.config, "vanish config of the DUT (its this_node is the DUT)");
  app.add_option("--src-workload", o.src_wl, "workload on the DUT (name)");
  app.add_option("--dst-workload", o.dst_wl, "workload on the peer node (name)");
  app.add_option("--dir", o.dir, "out: plaintext into the DUT; in: ESP from the peer")
      ->check(CLI::IsMember({"out", "in"}));
  app.add_option("--format", o.format,
                 "inbound wire format: vanish (ESP-in-UDP/Geneve) or secgw "
                 "(ESP transport)")
      ->check(CLI::IsMember({"vanish", "secgw"}));
  app.add_option("--sizes", o.sizes, "frame size(s) without FCS: 64 | 64,570,1518 | imix");
  app.add_option("--imix-max", o.imix_max, "cap of IMIX's 1518 B frames");
  app.add_option("--flows", o.flows, "flows (UDP ports), 1..16M")->check(CLI::Range(1u, 1u << 24));
}

bool make_traffic(const Opts& o, Mesh* mesh, Traffic* tr) {
  std::string err;
  if (!mesh->load(o.config, o.src_wl, o.dst_wl, &err)) {
    std::fprintf(stderr, "vanish-perf: %s\n", err.c_str());
    return false;
  }
  TrafficOpts to;
  to.dir = o.dir == "in" ? Dir::kIn : Dir::kOut;
  to.format = o.format == "secgw" ? Format::kSecgw : Format::kVanish;
  to.sizes = parse_sizes(o);
  to.flows = o.flows;
  if (!tr->build(*mesh, to, &err)) {
    std::fprintf(stderr, "vanish-perf: %s\n", err.c_str());
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: 100 ns buckets below 1 ms, 10 us buckets up to 1 s, then one overflow.

class Hist {
 public:
  Hist() : b_(kFine + kCoarse + 1, 0) {}
  void add(uint64_t ns) {
    size_t i = ns < 1000000 ? ns / 100
                            : std::min<uint64_t>(kFine + (ns - 1000000) / 10000, kFine + kCoarse);
    b_[i]++;
    n_++;
    max_ = std::max(max_, ns);
    sum_ += double(ns);
  }
  uint64_t count() const { return n_; }
  void merge(const Hist& o) {
    for (size_t i = 0; i < b_.size(); i++) b_[i] += o.b_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }
  // Upper edge of the bucket holding the q-quantile, in ns (max for q = 1).
  double quantile(double q) const {
    if (!n_) return 0;
    if (q >= 1) return double(max_);
    uint64_t want = uint64_t(std::ceil(q * double(n_))), acc = 0;
    for (size_t i = 0; i < b_.size(); i++) {
      acc += b_[i];
      if (acc >= want && acc) {
        double edge = i < kFine ? double(i + 1) * 100 : 1e6 + double(i - kFine + 1) * 1e4;
        return std::min(edge, double(max_));
      }
    }
    return double(max_);
  }
  json summary() const {
    json j;
    j["samples"] = n_;
    if (!n_) return j;
    j["mean_us"] = sum_ / double(n_) / 1e3;
    j["p50_us"] = quantile(0.5) / 1e3;
    j["p90_us"] = quantile(0.9) / 1e3;
    j["p99_us"] = quantile(0.99) / 1e3;
    j["p999_us"] = quantile(0.999) / 1e3;
    j["max_us"] = double(max_) / 1e3;
    json cdf = json::array();
    for (double q : {0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
                     0.995, 0.999, 0.9999, 1.0})
      cdf.push_back({q, quantile(q == 0 ? 1e-9 : q) / 1e3});
    j["cdf_us"] = cdf;
    return j;
  }

 private:
  static constexpr size_t kFine = 10000, kCoarse = 99900;
  std::vector<uint64_t> b_;
  uint64_t n_ = 0, max_ = 0;
  double sum_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Generator + receiver on one lcore.

struct TrialStats {
  double rate = 0, seconds = 0;
  uint64_t offered = 0, sent = 0, tx_full = 0, received = 0, rx_bytes = 0, rx_esp = 0, rx_plain = 0,
           rx_other = 0, lat_bad = 0;
  uint64_t skipped = 0;  // rate mode: packets of the schedule never offered (generator too late)
  uint64_t meas_rx = 0, meas_rx_bytes = 0;  // max mode: received inside the measuring window
  double meas_seconds = 0;
  double cpu_share = 0;  // this thread's CPU time / wall time over the measuring window
  Hist lat;
  std::vector<double> slice_p50_us, slice_p99_us;  // latency_trial with rt: one per slice
  double loss_ratio() const {
    return offered ? double(offered - std::min(offered, received)) / double(offered) : 0;
  }
};

class Lab {
 public:
  Lab(const Opts& o, const Mesh& m, const Traffic& t) : o_(o), mesh_(m), tr_(t) {}

  bool init_ports() {
    pool_ = rte_pktmbuf_pool_create("vperf_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    int(rte_socket_id()));
    if (!pool_) return fail("cannot create the mbuf pool");
    uint16_t nports = rte_eth_dev_count_avail();
    if (o_.loopback) {
      tx_ = rx_ = 0;
    } else {
      tx_ = o_.dir == "out" ? 0 : 1;
      rx_ = o_.dir == "out" ? 1 : 0;
    }
    if (nports <= std::max(tx_, rx_))
      return fail("needs " + std::to_string(std::max(tx_, rx_) + 1) + " ports, EAL has " +
                  std::to_string(nports));
    for (uint16_t p = 0; p <= std::max(tx_, rx_); p++) {
      rte_eth_conf conf{};
      if (rte_eth_dev_configure(p, 1, 1, &conf) != 0 ||
          rte_eth_rx_queue_setup(p, 0, 1024, rte_eth_dev_socket_id(p), nullptr, pool_) != 0 ||
          rte_eth_tx_queue_setup(p, 0, 1024, rte_eth_dev_socket_id(p), nullptr) != 0 ||
          rte_eth_dev_start(p) != 0)
        return fail("cannot set up port " + std::to_string(p));
      rte_eth_promiscuous_enable(p);
    }
    // Virtual ports (memif) come up when the peer connects.
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(o_.link_timeout);
    // A memif client that connected before the server's port was started is not retried by
    // the PMD: restart the port every 2 s until the link is up.
    for (uint16_t p = 0; p <= std::max(tx_, rx_); p++) {
      auto retry = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      for (;;) {
        rte_eth_link l{};
        rte_eth_link_get_nowait(p, &l);
        if (l.link_status) break;
        if (std::chrono::steady_clock::now() > retry) {
          rte_eth_dev_stop(p);
          rte_eth_dev_start(p);
          retry = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        }
        if (std::chrono::steady_clock::now() > deadline || g_stop)
          return fail("port " + std::to_string(p) + ": link down after " +
                      std::to_string(o_.link_timeout) + " s (is the DUT running?)");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    struct sigaction fault {};
    fault.sa_handler = on_fault;
    fault.sa_flags = SA_RESETHAND;
    sigaction(SIGSEGV, &fault, nullptr);
    sigaction(SIGBUS, &fault, nullptr);
    g_fault_ports = std::max(tx_, rx_) + 1;
    link_period_ = rte_get_tsc_hz() / 1000;
    for (uint16_t p = 0; p <= std::max(tx_, rx_); p++) {
      rte_eth_dev_info info{};
      if (rte_eth_dev_info_get(p, &info) == 0 && info.driver_name &&
          std::string_view(info.driver_name) == "net_memif")
        link_every_burst_ = true;
    }
    // A memif client's receive ring offers the DUT no free slot until its first rx_burst fills
    // it: poll every port once now, or the DUT's first burst back is refused (its tx_full drops).
    for (uint16_t q = 0; q <= std::max(tx_, rx_); q++) {
      rte_mbuf* junk[kBurst];
      rte_pktmbuf_free_bulk(junk, rte_eth_rx_burst(q, 0, junk, kBurst));
    }
    crypto::EspSaParams p;
    for (int k = 0; k < 2; k++) {
      const SaKeys& s = k ? mesh_.in_sa : mesh_.out_sa;
      p.spi = s.spi;
      p.alg = s.key.size() == 16   ? crypto::AeadAlg::kAes128Gcm
              : s.key.size() == 24 ? crypto::AeadAlg::kAes192Gcm
                                   : crypto::AeadAlg::kAes256Gcm;
      p.key = s.key;
      p.salt = s.salt;
      p.esn = s.esn;
      if (!rx_sa_[k].init(p)) return fail("cannot init a receive SA");
    }
    imb_ = crypto::thread_imb_mgr();
    return true;
  }

  // A port whose link went down during a run (the DUT exited or closed its memif socket): the
  // run ends at once. DPDK 22.11's memif PMD faults on a burst after its peer went away (the
  // disconnect unmaps the rings), so no burst may follow; the lab reports the run as failed.
  // Checked before every burst on memif ports (it reads the link word the PMD clears on
  // disconnect); other PMDs may ask the kernel for their link (af_packet, tap), so there at
  // most once a millisecond.
  bool links_up() {
    if (lost_port_ >= 0) return false;
    if (!link_every_burst_) {
      const uint64_t now = rte_rdtsc();
      if (now - link_checked_ < link_period_) return true;
      link_checked_ = now;
    }
    for (uint16_t p : {tx_, rx_}) {
      rte_eth_link l{};
      if (rte_eth_link_get_nowait(p, &l) == 0 && !l.link_status) {
        lost_port_ = p;
        return false;
      }
    }
    return true;
  }
  int lost_port() const { return lost_port_; }

  void close_ports() {
    for (uint16_t p = 0; p <= std::max(tx_, rx_); p++) {
      rte_eth_dev_stop(p);
      rte_eth_dev_close(p);
    }
  }

  // One trial. rate 0 = as fast as the DUT takes (retry what the port refuses).
  TrialStats trial(double rate, double seconds, double warmup) {
    TrialStats s;
    s.rate = rate;
    trial_id_++;
    const uint64_t hz = rte_get_tsc_hz();
    ns_per_tick_ = 1e9 / double(hz);
    const uint64_t start = rte_rdtsc(), end = start + uint64_t(seconds * double(hz));
    const uint64_t meas_from = start + uint64_t(std::min(warmup, seconds) * double(hz));
    bool in_meas = warmup <= 0;
    uint64_t meas_tsc0 = start;
    double cpu0 = thread_cpu_s();
    if (in_meas) marker("MEASURE_START");
    rte_mbuf* pend[kBurst];
    uint16_t npend = 0;
    uint64_t now = start;
    const uint64_t max_lag = std::max<uint64_t>(2 * kBurst, uint64_t(rate * kMaxLagSeconds));
    while (now < end && !g_stop && links_up()) {
      uint16_t want = kBurst;
      if (rate > 0) {
        uint64_t due = uint64_t((unsigned __int128)(now - start) * uint64_t(rate) / hz) - s.skipped;
        // A generator that fell behind its schedule (descheduled, or faulting on fresh memif
        // pages) must not dump the whole backlog at full speed: that burst, not the DUT, would
        // overflow the DUT's ring. Beyond max_lag packets late it skips the rest, counted.
        if (due > s.offered + max_lag) {
          s.skipped += due - s.offered - max_lag;
          due = s.offered + max_lag;
        }
        want = uint16_t(std::min<uint64_t>(due > s.offered ? due - s.offered : 0, kBurst));
      }
      if (want > npend) {
        uint16_t add = uint16_t(want - npend);
        if (rte_pktmbuf_alloc_bulk(pool_, pend + npend, add) == 0) {
          for (uint16_t k = 0; k < add; k++) {
            rte_mbuf* m = pend[npend + k];
            uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
            uint16_t len = tr_.fill(d, pkt_idx_, ++seq_, uint8_t(trial_id_), now);
            pkt_idx_++;
            m->data_len = len;
            m->pkt_len = len;
          }
          npend = uint16_t(npend + add);
          s.offered += add;
        }
      }
      if (npend) {
        uint16_t k = rte_eth_tx_burst(tx_, 0, pend, npend);
        s.sent += k;
        if (rate > 0) {
          if (k < npend) {
            s.tx_full += npend - k;
            rte_pktmbuf_free_bulk(pend + k, npend - k);
          }
          npend = 0;
        } else {
          std::memmove(pend, pend + k, sizeof(pend[0]) * (npend - k));
          npend = uint16_t(npend - k);
        }
      }
      poll_rx(s);
      now = rte_rdtsc();
      if (!in_meas && now >= meas_from) {
        in_meas = true;
        meas_tsc0 = now;
        cpu0 = thread_cpu_s();
        marker("MEASURE_START");
        s.meas_rx = s.received;
        s.meas_rx_bytes = s.rx_bytes;
      }
    }
    if (npend) {  // max mode: never offered for good
      s.offered -= npend;
      rte_pktmbuf_free_bulk(pend, npend);
    }
    const uint64_t t_end = rte_rdtsc();
    marker("MEASURE_END");
    s.meas_rx = s.received - s.meas_rx;
    s.meas_rx_bytes = s.rx_bytes - s.meas_rx_bytes;
    s.meas_seconds = double(t_end - meas_tsc0) / double(hz);
    s.seconds = double(t_end - start) / double(hz);
    s.cpu_share = s.meas_seconds > 0 ? (thread_cpu_s() - cpu0) / s.meas_seconds : 0;
    // Drain: until nothing arrived for 20 ms (at most 500 ms).
    uint64_t last = rte_rdtsc(), got = s.received;
    const uint64_t drain_end = last + hz / 2;
    while (!g_stop && links_up()) {
      poll_rx(s);
      uint64_t t = rte_rdtsc();
      if (s.received != got) {
        got = s.received;
        last = t;
      } else if (t - last > hz / 50 || t > drain_end) {
        break;
      }
    }
    return s;
  }

  // A rate-limited trial for latency. rt > 0: in slices of at most --latency-slice (<= 0.8 s),
  // each with this thread under SCHED_FIFO at priority rt and followed by a 0.2 s pause at
  // normal priority, so no other task on the machine can preempt the timed loop, and the
  // kernel's RT throttling (which takes the CPU back for 50 ms of every second of real-time
  // load) never cuts a slice. The slices' counters and histograms are summed (the pooled
  // figures), and each slice's p50/p99 is kept: every slice is one latency trial in the sense of
  // RFC 2544 section 26.2, which repeats the trial (at least 20 times) and reports the average.
  // Fails (no RT) when the thread may not use SCHED_FIFO.
  TrialStats latency_trial(double rate, double seconds, int rt, bool* rt_used) {
    *rt_used = false;
    // First, a warm-up at the same rate and normal priority, discarded (--warmup, at least
    // 0.3 s). A fresh memif connection's rings are new shared memory: their first pass faults
    // in every page on both sides, tens of milliseconds during which the DUT's ring overflows
    // (counted as loss: 2-6 % of a 3 s trial at 0.5 Mpps). And right after link-up the ports'
    // control threads still have work, which a real-time loop would keep off the CPU.
    trial(rate, std::max(o_.warmup, 0.3), 0);
    if (rt <= 0) return trial(rate, seconds, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    TrialStats total;
    total.rate = rate;
    double left = seconds, cpu_weighted = 0;
    while (left > 1e-3 && !g_stop && links_up()) {
      const double slice = std::min(left, std::clamp(o_.latency_slice, 0.05, 0.8));
      sched_param fifo{};
      fifo.sched_priority = rt;
      const bool on = pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0;
      // The lab gives the DUT's worker the same priority between these two markers.
      if (on) marker("RT_SLICE_START");
      TrialStats c = trial(rate, slice, 0);
      if (on) {
        sched_param other{};
        pthread_setschedparam(pthread_self(), SCHED_OTHER, &other);
        marker("RT_SLICE_END");
        *rt_used = true;
      }
      total.offered += c.offered;
      total.sent += c.sent;
      total.tx_full += c.tx_full;
      total.skipped += c.skipped;
      total.received += c.received;
      total.rx_bytes += c.rx_bytes;
      total.rx_esp += c.rx_esp;
      total.rx_plain += c.rx_plain;
      total.rx_other += c.rx_other;
      total.lat_bad += c.lat_bad;
      total.seconds += c.seconds;
      total.meas_seconds += c.meas_seconds;
      cpu_weighted += c.cpu_share * c.meas_seconds;
      total.lat.merge(c.lat);
      if (c.lat.count() > 0) {
        total.slice_p50_us.push_back(c.lat.quantile(0.5) / 1e3);
        total.slice_p99_us.push_back(c.lat.quantile(0.99) / 1e3);
      }
      left -= slice;
      if (left > 1e-3)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      else if (on)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the lab resets
    }
    total.cpu_share = total.meas_seconds > 0 ? cpu_weighted / total.meas_seconds : 0;
    return total;
  }

  json to_json(const TrialStats& s) const {
    json j;
    j["offered_pps"] = s.seconds > 0 ? double(s.offered) / s.seconds : 0;
    j["target_pps"] = s.rate;
    j["offered"] = s.offered;
    j["sent"] = s.sent;
    j["tx_full"] = s.tx_full;
    j["gen_skipped"] = s.skipped;
    j["received"] = s.received;
    j["loss_ratio"] = s.loss_ratio();
    j["seconds"] = s.seconds;
    double rx_pps = s.rate > 0 ? double(s.received) / s.seconds
                               : (s.meas_seconds > 0 ? double(s.meas_rx) / s.meas_seconds : 0);
    double rx_bps = s.rate > 0
                        ? double(s.rx_bytes) * 8 / s.seconds
                        : (s.meas_seconds > 0 ? double(s.meas_rx_bytes) * 8 / s.meas_seconds : 0);
    j["mpps"] = rx_pps / 1e6;
    j["gbps_out"] = rx_bps / 1e9;  // frames as received (ESP outbound, plaintext inbound)
    j["gbps"] = rx_pps * avg_size() * 8 / 1e9;  // plaintext frames carried
    j["rx_esp"] = s.rx_esp;
    j["rx_plain"] = s.rx_plain;
    j["rx_other"] = s.rx_other;
    j["lat_bad"] = s.lat_bad;
    j["gen_cpu_share"] = s.cpu_share;
    j["latency"] = s.lat.summary();
    if (!s.slice_p99_us.empty()) {
      // Per-slice trials: their p99s, and the median and mean over them.
      json& l = j["latency"];
      l["slices"] = s.slice_p99_us.size();
      l["slice_p99_us"] = s.slice_p99_us;
      l["p99_median_us"] = median(s.slice_p99_us);
      l["p99_mean_us"] = std::accumulate(s.slice_p99_us.begin(), s.slice_p99_us.end(), 0.0) /
                         double(s.slice_p99_us.size());
      l["p50_median_us"] = median(s.slice_p50_us);
    }
    return j;
  }

  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  double avg_size() const {
    const auto& v = tr_.opts().sizes;
    return double(std::accumulate(v.begin(), v.end(), 0.0)) / double(v.size());
  }

 private:
  bool fail(const std::string& m) {
    std::fprintf(stderr, "vanish-perf: %s\n", m.c_str());
    return false;
  }

  void poll_rx(TrialStats& s) {
    rte_mbuf* pk[64];
    uint16_t n = rte_eth_rx_burst(rx_, 0, pk, 64);
    if (!n) return;
    const uint64_t now = rte_rdtsc();
    for (uint16_t i = 0; i < n; i++) {
      rte_mbuf* m = pk[i];
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pk[i + 1], void*));
      s.rx_bytes += m->pkt_len;
      inspect(s, rte_pktmbuf_mtod(m, uint8_t*), m->data_len, now);
    }
    s.received += n;
    rte_pktmbuf_free_bulk(pk, n);
  }

  static uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

  void tag(TrialStats& s, const uint8_t* t, const uint8_t* end, uint64_t now) {
    if (t + kTagLen > end) return;
    uint32_t magic, word;
    uint64_t tsc;
    std::memcpy(&magic, t, 4);
    std::memcpy(&word, t + 4, 4);
    std::memcpy(&tsc, t + 8, 8);
    if (magic != htonl(kTagMagic) || (word >> 24) != (trial_id_ & 0xff) || tsc > now) return;
    s.lat.add(uint64_t(double(now - tsc) * ns_per_tick_));
  }

  void inspect(TrialStats& s, uint8_t* p, uint32_t len, uint64_t now) {
    if (len < 42 || be16(p + 12) != 0x0800) {
      s.rx_other++;
      return;
    }
    size_t ihl = size_t(p[14] & 0xf) * 4;
    uint8_t proto = p[23];
    size_t l4 = 14 + ihl;
    uint8_t* end = p + len;
    size_t esp = 0;
    bool vanish = false;
    if (proto == 17 && l4 + 8 <= len) {
      if (be16(p + l4 + 2) == 4500) {
        esp = l4 + 8;
        vanish = true;
      } else {
        s.rx_plain++;
        if (seen_++ % o_.lat_sample == 0) tag(s, p + l4 + 8, end, now);
        return;
      }
    } else if (proto == 50) {
      esp = l4;
    } else {
      s.rx_other++;
      return;
    }
    s.rx_esp++;
    if (seen_++ % o_.lat_sample) return;
    if (esp + crypto::kEspMinLen > len) return;
    uint32_t spi = uint32_t(be16(p + esp)) << 16 | be16(p + esp + 2);
    crypto::EspSa* sa = spi == rx_sa_[0].spi()   ? &rx_sa_[0]
                        : spi == rx_sa_[1].spi() ? &rx_sa_[1]
                                                 : nullptr;
    size_t pl = 0;
    uint8_t nh = 0;
    if (!sa || sa->open(imb_, p + esp, len - esp, &pl, &nh) != crypto::EspStatus::kOk) {
      s.lat_bad++;
      return;
    }
    uint8_t* q = p + esp + crypto::kEspPayloadOffset;
    if (vanish) {  // UDP 6081 | Geneve (8 + options) | inner IPv4 | UDP
      if (pl < 8 + 8) return;
      size_t g = 8 + 8 + size_t(q[8] & 0x3f) * 4;
      if (g + 20 > pl) return;
      q += g + size_t(q[g] & 0xf) * 4;
    }
    tag(s, q + 8, end, now);
  }

  const Opts& o_;
  const Mesh& mesh_;
  const Traffic& tr_;
  rte_mempool* pool_ = nullptr;
  uint16_t tx_ = 0, rx_ = 1;
  int lost_port_ = -1;  // see links_up
  bool link_every_burst_ = false;
  uint64_t link_checked_ = 0, link_period_ = 0;
  uint64_t seq_ = 0, pkt_idx_ = 0, seen_ = 0;
  uint32_t trial_id_ = 0;
  double ns_per_tick_ = 1;
  crypto::EspSa rx_sa_[2];
  IMB_MGR* imb_ = nullptr;
};

json base_json(const Opts& o, const Mesh& m, const char* kind) {
  json j;
  j["kind"] = kind;
  if (!o.label.empty()) j["label"] = o.label;
  j["dir"] = o.dir;
  j["format"] = o.format;
  j["sizes"] = o.sizes;
  j["flows"] = o.flows;
  j["dut"] = m.dut_name;
  j["src"] = m.src_name;
  j["dst"] = m.dst_name;
  return j;
}

void print(const json& j) {
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

void say(const char* what, const TrialStats& s, const json& j) {
  std::fprintf(stderr,
               "vanish-perf: %-8s target %10.0f pps  offered %10.0f pps  rx %8.4f Mpps  loss "
               "%.5f%%  p99 %s us\n",
               what, s.rate, j["offered_pps"].get<double>(), j["mpps"].get<double>(),
               100 * s.loss_ratio(),
               s.lat.count() ? std::to_string(s.lat.quantile(0.99) / 1e3).c_str() : "-");
}

// A run whose port went down part-way has no figures worth printing: say so and fail.
bool link_lost(const Lab& lab) {
  if (lab.lost_port() < 0) return false;
  std::fprintf(stderr,
               "vanish-perf: port %d: link down during a trial (the DUT exited or closed its "
               "memif socket); no result\n",
               lab.lost_port());
  return true;
}

int cmd_run(const Opts& o, Lab& lab, const Mesh& m) {
  bool rt = false;
  TrialStats s = o.rate > 0 ? lab.latency_trial(o.rate, o.duration, o.rt_priority, &rt)
                            : lab.trial(o.rate, o.duration + o.warmup, o.warmup);
  if (link_lost(lab)) return 3;
  json j = base_json(o, m, "run");
  j.update(lab.to_json(s));
  j["rt_priority"] = rt ? o.rt_priority : 0;
  say("run", s, j);
  print(j);
  return 0;
}

int cmd_ndr(const Opts& o, Lab& lab, const Mesh& m) {
  // Warm-up + the upper bound: the DUT's receive rate when offered everything.
  TrialStats mx = lab.trial(0, o.trial + o.warmup, o.warmup);
  if (link_lost(lab)) return 3;
  json jm = lab.to_json(mx);
  say("max", mx, jm);
  double top = o.max_rate > 0 ? o.max_rate : jm["mpps"].get<double>() * 1e6 * 1.05;
  json out = base_json(o, m, "ndr");
  out["max_mpps"] = jm["mpps"];
  out["max_gbps"] = jm["gbps"];
  json trials = json::array();
  auto search = [&](double thr, double lo) {
    double hi = top, best = lo;
    json best_j;
    // Try the top first: a DUT faster than the generator passes at once.
    for (int it = 0; it < 30 && !g_stop; it++) {
      double r = it == 0 ? hi : (lo + hi) / 2;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      TrialStats s = lab.trial(r, o.trial, 0);
      if (lab.lost_port() >= 0) break;
      json j = lab.to_json(s);
      say(thr == 0 ? "ndr" : "pdr", s, j);
      trials.push_back({{"thr", thr},
                        {"rate", r},
                        {"offered_pps", j["offered_pps"]},
                        {"loss", s.loss_ratio()},
                        {"mpps", j["mpps"]}});
      // A trial passes only if the generator really offered the rate (within 1 %) and the
      // loss stayed within the threshold.
      bool offered_ok = double(s.offered) >= 0.99 * r * s.seconds;
      if (!offered_ok) j["generator_short"] = true;
      if (offered_ok && s.loss_ratio() <= thr) {
        lo = r;
        best = r;
        best_j = j;
        if (it == 0) break;
      } else {
        hi = r;
      }
      if (hi - lo <= o.resolution * hi) break;
    }
    return std::make_pair(best, best_j);
  };
  auto [ndr, ndr_j] = search(0.0, 0.0);
  auto [pdr, pdr_j] = search(o.pdr_loss, ndr);
  if (link_lost(lab)) return 3;
  double avg = lab.avg_size();
  out["ndr_mpps"] = ndr / 1e6;
  out["ndr_gbps"] = ndr * avg * 8 / 1e9;
  out["pdr_mpps"] = pdr / 1e6;
  out["pdr_gbps"] = pdr * avg * 8 / 1e9;
  out["pdr_loss"] = o.pdr_loss;
  out["trial_s"] = o.trial;
  out["resolution"] = o.resolution;
  out["trials"] = trials;
  // Latency at a fraction of the NDR (of the max receive rate when no NDR was found).
  double lr = (ndr > 0 ? ndr : jm["mpps"].get<double>() * 1e6) * o.latency_load;
  if (lr > 0 && !g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bool rt = false;
    TrialStats s = lab.latency_trial(lr, o.latency_duration, o.rt_priority, &rt);
    if (link_lost(lab)) return 3;
    json j = lab.to_json(s);
    say("latency", s, j);
    out["latency_rt_priority"] = rt ? o.rt_priority : 0;
    out["latency_load"] = o.latency_load;
    out["latency_rate_pps"] = lr;
    out["latency_loss_ratio"] = s.loss_ratio();
    out["latency"] = j["latency"];
  }
  print(out);
  return 0;
}

int cmd_export(const Opts& o, const Mesh& m, const Traffic& tr) {
  uint64_t n = o.count;
  if (!n) {
    uint64_t c = tr.cycle();
    n = std::min<uint64_t>(uint64_t(o.flows) / std::gcd(uint64_t(o.flows), c) * c, 1u << 20);
  }
  std::string err;
  if (!o.pcap_out.empty()) {
    std::vector<std::vector<uint8_t>> frames;
    frames.reserve(n);
    std::vector<uint8_t> buf(tr.max_frame());
    for (uint64_t i = 0; i < n; i++) {
      uint16_t len = tr.fill(buf.data(), i, i + 1, 0, 0);
      frames.emplace_back(buf.begin(), buf.begin() + len);
    }
    if (!write_pcap(o.pcap_out, frames, &err)) {
      std::fprintf(stderr, "vanish-perf: %s\n", err.c_str());
      return 1;
    }
  }
  if (!o.lua_out.empty()) {
    std::ofstream f(o.lua_out);
    auto mac = [](const std::array<uint8_t, 6>& a) {
      char b[32];
      std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4],
                    a[5]);
      return std::string(b);
    };
    auto ip = [](const std::array<uint8_t, 4>& a) {
      return std::to_string(a[0]) + "." + std::to_string(a[1]) + "." + std::to_string(a[2]) + "." +
             std::to_string(a[3]);
    };
    auto sizes = parse_sizes(o);
    uint16_t sp0, dp0, sp1, dp1;
    flow_ports(tr.opts(), 0, &sp0, &dp0);
    flow_ports(tr.opts(), o.flows - 1, &sp1, &dp1);
    f << "-- Pktgen-DPDK script generated by vanish-perf (perf/lab): " << m.dut_name
      << "'s workload traffic.\n"
      << "-- Plaintext outbound, port 0 -> the DUT's local port: " << m.src_name << " -> "
      << m.dst_name << ", UDP, " << o.flows << " flow(s), size " << sizes.front() << " B.\n"
      << "-- pktgen sizes exclude the FCS as here. Run: pktgen ... -- -f this.lua\n"
      << "-- Inbound ESP (valid sequence numbers) and IMIX cannot be expressed with Pktgen's "
         "range\n"
      << "-- mode: replay the pcap exported with it instead (pktgen -s 0:traffic.pcap); a DUT's\n"
      << "-- anti-replay window accepts each exported ESP packet once.\n"
      << "package.path = package.path .. \";?.lua;test/?.lua;app/?.lua;\"\n"
      << "require \"Pktgen\"\n"
      << "local port = \"0\"\n"
      << "pktgen.set_proto(port, \"udp\")\n"
      << "pktgen.range.dst_mac(port, \"start\", \"" << mac(m.dut_local_mac) << "\")\n"
      << "pktgen.range.src_mac(port, \"start\", \"" << mac(m.src_mac) << "\")\n";
    for (const char* k : {"start", "min", "max"}) {
      f << "pktgen.range.src_ip(port, \"" << k << "\", \"" << ip(m.src_ip) << "\")\n";
      f << "pktgen.range.dst_ip(port, \"" << k << "\", \"" << ip(m.dst_ip) << "\")\n";
      f << "pktgen.range.pkt_size(port, \"" << k << "\", " << sizes.front() << ")\n";
    }
    f << "pktgen.range.src_ip(port, \"inc\", \"0.0.0.0\")\n"
      << "pktgen.range.dst_ip(port, \"inc\", \"0.0.0.0\")\n"
      << "pktgen.range.pkt_size(port, \"inc\", 0)\n"
      << "pktgen.range.src_port(port, \"start\", " << sp0 << ")\n"
      << "pktgen.range.src_port(port, \"min\", " << sp0 << ")\n"
      << "pktgen.range.src_port(port, \"max\", " << (o.flows >= 60000 ? sp0 + 59999 : sp1) << ")\n"
      << "pktgen.range.src_port(port, \"inc\", " << (o.flows > 1 ? 1 : 0) << ")\n"
      << "pktgen.range.dst_port(port, \"start\", " << dp0 << ")\n"
      << "pktgen.range.dst_port(port, \"min\", " << dp0 << ")\n"
      << "pktgen.range.dst_port(port, \"max\", " << dp1 << ")\n"
      << "pktgen.range.dst_port(port, \"inc\", " << (dp1 > dp0 ? 1 : 0) << ")\n"
      << "pktgen.set_range(port, \"on\")\n"
      << "pktgen.start(port)\n";
  }
  json j = base_json(o, m, "export");
  j["packets"] = n;
  j["pcap"] = o.pcap_out;
  j["lua"] = o.lua_out;
  print(j);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: vanish-perf export|selftest [opts] | run|ndr [EAL args] -- [opts]\n");
    return 2;
  }
  std::string cmd = argv[1];
  bool eal = cmd == "run" || cmd == "ndr";
  // EAL arguments: for run/ndr everything up to "--".
  std::vector<char*> eal_argv{argv[0]}, app_argv{argv[0]};
  int i = 2;
  if (eal) {
    for (; i < argc && std::string(argv[i]) != "--"; i++) eal_argv.push_back(argv[i]);
    if (i < argc) i++;
  }
  for (; i < argc; i++) app_argv.push_back(argv[i]);

  Opts o;
  CLI::App app{"vanish-perf " + cmd};
  add_traffic_opts(app, o);
  if (cmd == "export") {
    app.add_option("--pcap", o.pcap_out, "write the traffic to this pcap");
    app.add_option("--lua", o.lua_out, "write a Pktgen-DPDK Lua script");
    app.add_option("--count", o.count, "packets (default lcm(flows, size cycle), at most 1M)");
  } else if (cmd == "selftest") {
    app.add_option("--packets", o.selftest_packets);
  } else if (eal) {
    app.add_option("--rate", o.rate, "offered packets/s (run; 0 = as fast as the DUT takes)");
    app.add_option("--duration", o.duration, "seconds measured (run)");
    app.add_option("--warmup", o.warmup,
                   "seconds before measuring (max mode); --rate: a discarded trial first (>= 0.3)");
    app.add_option("--lat-sample", o.lat_sample,
                   "read the probe tag of 1 in N received packets (ESP ones are decrypted for it)")
        ->check(CLI::Range(1u, 1u << 20));
    app.add_flag("--loopback", o.loopback, "send and receive on port 0");
    app.add_option("--link-timeout", o.link_timeout, "seconds to wait for the ports' links");
    app.add_option("--label", o.label, "copied into the JSON output");
    app.add_option("--trial", o.trial, "NDR/PDR trial length, s");
    app.add_option("--resolution", o.resolution, "search stops when (hi-lo)/hi <= this");
    app.add_option("--pdr-loss", o.pdr_loss, "loss ratio allowed at the PDR");
    app.add_option("--max-rate", o.max_rate, "search upper bound, pps (0 = measured max x 1.05)");
    app.add_option("--latency-load", o.latency_load, "latency trial at this fraction of the NDR");
    app.add_option("--latency-duration", o.latency_duration, "latency trial length, s");
    app.add_option("--latency-slice", o.latency_slice,
                   "with --rt-priority: slice length, s (one latency trial per slice; the JSON "
                   "adds each slice's p99 and their median)")
        ->check(CLI::Range(0.05, 0.8));
    app.add_option("--rt-priority", o.rt_priority,
                   "run with --rate, and ndr's latency trial: the timed loop under SCHED_FIFO at "
                   "this priority, in slices of <= 0.8 s (root; 0 = off)")
        ->check(CLI::Range(0, 99));
  } else {
    std::fprintf(stderr, "vanish-perf: unknown command %s\n", cmd.c_str());
    return 2;
  }
  try {
    app.parse(int(app_argv.size()), app_argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  Mesh mesh;
  Traffic tr;
  if (!make_traffic(o, &mesh, &tr)) return 2;
  if (cmd == "export") return cmd_export(o, mesh, tr);
  if (cmd == "selftest") {
    std::string err;
    // Every size of the cycle, both formats' ESP, and the plaintext path through fill().
    if (!tr.selftest(mesh, o.selftest_packets, &err)) {
      std::fprintf(stderr, "vanish-perf selftest: FAIL: %s\n", err.c_str());
      return 1;
    }
    std::fprintf(stderr, "vanish-perf selftest: ok (%u packets, dir %s, format %s, sizes %s)\n",
                 o.selftest_packets, o.dir.c_str(), o.format.c_str(), o.sizes.c_str());
    return 0;
  }

  if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "vanish-perf: EAL init failed\n");
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  int rc = 2;
  {
    Lab lab(o, mesh, tr);
    if (lab.init_ports()) {
      rc = cmd == "run" ? cmd_run(o, lab, mesh) : cmd_ndr(o, lab, mesh);
      lab.close_ports();
    }
  }
  rte_eal_cleanup();
  return rc;
}
