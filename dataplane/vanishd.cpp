// vanishd: the appliance.
//   vanishd [EAL args] -- --config PATH [--local-port N] [--fabric-port N] [--exit-when-idle] ...
// The main lcore runs the control thread (config, live reloads, the control socket, publishing,
// stats, shutdown); every other lcore of -l is a worker (shared nothing). Ports come from EAL
// (--vdev or PCI).
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

// OpenSSL's headers (peering) before IPsec-MB's (crypto/).
#include "ctl/peering/manager.hpp"
//
#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/live_config.hpp"
#include "dataplane/ctl_service.hpp"
#include "dataplane/metrics.hpp"
#include "dataplane/metrics_http.hpp"
#include "ctl/model.hpp"
#include "ctl/validate.hpp"
#include "dataplane/ports.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/stats_report.hpp"
#include "dataplane/worker.hpp"

using namespace vanish;

namespace {

std::atomic<bool> g_signal{false};
void on_signal(int) {
  g_signal.store(true);
}

struct Options {
  std::string config;
  int local_port = -1, fabric_port = -1;
  bool exit_when_idle = false;
  unsigned idle_ms = 300;
  std::string stats_json;
  unsigned stats_interval_s = 0;
  uint32_t mbufs = 0, flows = 0;
  unsigned max_idle_sleep_us = 200;
  unsigned idle_spin_us = 50;
  bool quiet = false;
  std::string ctl_socket;  // empty: /run/vanish/<node>.sock
  bool no_watch = false;
  std::string metrics;  // empty: 127.0.0.1:15020 (unavailable: off); "none": off
};

int worker_main(void* arg) {
  auto* pair = static_cast<std::pair<dp::Worker*, std::atomic<bool>*>*>(arg);
  pair->first->run(*pair->second);
  return 0;
}

dp::StatsView collect(const std::string& node, const std::vector<std::unique_ptr<dp::Worker>>& ws) {
  dp::StatsView v;
  v.node = node;
  for (auto& w : ws) v.workers.push_back(w->counters());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int eal = rte_eal_init(argc, argv);
  if (eal < 0) {
    std::fprintf(stderr, "vanishd: EAL init failed: %s\n", rte_strerror(rte_errno));
    return 2;
  }
  argc -= eal;
  argv += eal;

  Options o;
  CLI::App app{"vanishd: Istio ambient L4 secure overlay appliance (DPDK)", "vanishd"};
  app.add_option("--config", o.config, "config file (.textproto, .json or .pb)")->required();
  app.add_option("--local-port", o.local_port, "DPDK port id of the local (workload) port");
  app.add_option("--fabric-port", o.fabric_port, "DPDK port id of the fabric port");
  app.add_flag("--exit-when-idle", o.exit_when_idle,
               "stop when every RX port has been idle for --idle-ms, print counters, exit 0");
  app.add_option("--idle-ms", o.idle_ms, "idle time for --exit-when-idle (ms)");
  app.add_option("--stats-json", o.stats_json, "write the final counters as JSON to this file");
  app.add_option("--stats-interval", o.stats_interval_s, "print counters every N seconds (0: off)");
  app.add_option("--mbufs", o.mbufs, "mbuf pool size (overrides config limits.mbufs)");
  app.add_option("--flows", o.flows, "flow table entries per worker (overrides config)");
  app.add_option("--max-idle-sleep-us", o.max_idle_sleep_us, "longest idle back-off sleep (us)");
  app.add_option("--idle-spin-us", o.idle_spin_us,
                 "keep polling this long after the last packet before the first idle sleep (us)");
  app.add_flag("-q,--quiet", o.quiet, "no start-up summary");
  app.add_option("--metrics", o.metrics,
                 "Prometheus /metrics on HOST:PORT (default 127.0.0.1:15020; \"none\": off)");
  app.add_option("--ctl-socket", o.ctl_socket,
                 "control socket for vanishctl (default /run/vanish/<node>.sock; \"none\": off)");
  app.add_flag("--no-watch", o.no_watch,
               "do not reload the config when the file or one of its includes changes");
  // argv[0] is the last EAL-consumed arg; CLI11 expects a program name there.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; i--) args.emplace_back(argv[i]);
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    rte_eal_cleanup();
    return rc == 0 ? 0 : 2;
  }

  config::Config cfg;
  std::vector<std::string> load_errors, config_files;
  if (!ctl::load_config(o.config, &cfg, &load_errors, &config_files)) {
    for (auto& e : load_errors) std::fprintf(stderr, "vanishd: config: %s\n", e.c_str());
    rte_eal_cleanup();
    return 2;
  }
  unsigned n_workers = rte_lcore_count() - 1;
  if (n_workers == 0 || n_workers > dp::kMaxWorkers) {
    std::fprintf(stderr,
                 "vanishd: need 1..%u worker lcores besides the main one (got %u): use -l 0,1\n",
                 dp::kMaxWorkers, n_workers);
    rte_eal_cleanup();
    return 2;
  }
  std::vector<ctl::ConfigError> cerrs;
  // mTLS peering (config `peering`): the manager keys SAs with every peer; every compile takes
  // the current ones (ctl/compile.hpp dynamic SAs). Created once the data plane exists.
  std::unique_ptr<ctl::peering::PeeringManager> peering;
  // Live reloads compile with the same options (and generation + 1).
  ctl::CompileOptions compile_opts{n_workers, 1};
  compile_opts.dynamic_sas = [&peering]() -> std::shared_ptr<const ctl::DynamicSas> {
    return peering ? peering->sas() : nullptr;
  };
  auto snap = ctl::compile_snapshot(cfg, compile_opts, nullptr, &cerrs);
  if (!snap) {
    for (auto& e : cerrs) std::fprintf(stderr, "vanishd: config rejected: %s\n", e.str().c_str());
    rte_eal_cleanup();
    return 2;
  }
  std::string node = cfg.this_node();
  for (const std::string& w : ctl::anti_replay_off_warnings(cfg))
    std::fprintf(stderr, "%s\n", w.c_str());
  ctl::ResolvedLimits lim = ctl::resolve_limits(cfg.limits());
  if (o.mbufs) lim.mbufs = o.mbufs;
  if (o.flows) lim.flows_per_worker = o.flows;
  uint16_t local_port = uint16_t(o.local_port >= 0 ? unsigned(o.local_port) : ctl::local_port(cfg));
  uint16_t fabric_port =
      uint16_t(o.fabric_port >= 0 ? unsigned(o.fabric_port) : ctl::fabric_port(cfg));
  if (local_port == fabric_port) {
    std::fprintf(stderr, "vanishd: local and fabric port are both %u\n", local_port);
    rte_eal_cleanup();
    return 2;
  }

  int socket = int(rte_socket_id());
  rte_mempool* pool = rte_pktmbuf_pool_create("vanish_mbufs", lim.mbufs, lim.mbuf_cache, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (!pool) {
    std::fprintf(stderr, "vanishd: cannot create a pool of %u mbufs: %s\n", lim.mbufs,
                 rte_strerror(rte_errno));
    rte_eal_cleanup();
    return 2;
  }
  std::string err;
  for (uint16_t p : {local_port, fabric_port}) {
    dp::PortSetup ps;
    ps.port = p;
    ps.queues = uint16_t(n_workers);
    ps.rx_desc = uint16_t(lim.rx_ring);
    ps.tx_desc = uint16_t(lim.tx_ring);
    ps.symmetric_rss = (p == local_port);
    ps.pool = pool;
    if (!dp::setup_port(ps, &err)) {
      std::fprintf(stderr, "vanishd: %s\n", err.c_str());
      rte_eal_cleanup();
      return 2;
    }
  }
  std::vector<rte_ring*> rings(n_workers, nullptr);
  for (unsigned w = 0; w < n_workers; w++) {
    rings[w] = rte_ring_create(("vanish_handoff_" + std::to_string(w)).c_str(), lim.handoff_ring,
                               socket, RING_F_SC_DEQ);
    if (!rings[w]) {
      std::fprintf(stderr, "vanishd: cannot create handoff ring %u\n", w);
      rte_eal_cleanup();
      return 2;
    }
  }

  auto pub_owner = std::make_unique<dp::SnapshotPublisher>(n_workers);
  dp::SnapshotPublisher& pub = *pub_owner;
  if (!o.quiet) {
    const dp::Snapshot& s = *snap;
    std::printf("vanishd %s: node %s, %u worker(s), config generation %llu\n", "0.1.0",
                node.c_str(), n_workers, (unsigned long long)s.generation);
    std::printf("  local  port %u: %s\n  fabric port %u: %s, IP MTU %u, outer %s\n", local_port,
                dp::port_describe(local_port).c_str(), fabric_port,
                dp::port_describe(fabric_port).c_str(), s.fabric_mtu,
                s.outer_ipv6 ? "IPv6" : "IPv4");
    std::printf(
        "  sizes: mbufs %u (cache %u), rx/tx ring %u/%u, handoff ring %u, flows/worker %u\n",
        lim.mbufs, lim.mbuf_cache, lim.rx_ring, lim.tx_ring, lim.handoff_ring,
        lim.flows_per_worker);
    std::printf("  mesh: %zu nodes, %zu workloads, %zu identities, %zu inbound SPIs\n",
                s.nodes.size(), s.workloads.size(), s.identities.size(), s.sa_in.size());
    std::printf("  ESP AES-GCM: %s\n", crypto::gcm_backend_name(crypto::GcmBackend::kAuto));
    std::fflush(stdout);
  }
  // Metrics: label epochs are set on every snapshot before it is published.
  auto metrics = std::make_unique<dp::Metrics>(
      dp::MetricsSources{node, {}, local_port, fabric_port, &pub, rte_rdtsc()});
  metrics->label(*snap);
  pub.publish(std::move(snap));

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<dp::Worker>> workers;
  std::vector<std::pair<dp::Worker*, std::atomic<bool>*>> launch;
  unsigned w = 0;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    dp::WorkerConfig wc;
    wc.id = w;
    wc.queue = uint16_t(w);
    wc.local_port = local_port;
    wc.fabric_port = fabric_port;
    wc.pool = pool;
    wc.flow_capacity = lim.flows_per_worker;
    wc.max_idle_sleep_us = o.max_idle_sleep_us;
    wc.idle_spin_us = o.idle_spin_us;
    wc.socket_id = int(rte_lcore_to_socket_id(lcore));
    workers.push_back(std::make_unique<dp::Worker>(wc, &pub, rings.data(), n_workers));
    if (!workers.back()->ok()) {
      std::fprintf(stderr, "vanishd: cannot create the flow table of worker %u (%u entries)\n", w,
                   lim.flows_per_worker);
      rte_eal_cleanup();
      return 2;
    }
    w++;
  }
  if (!o.quiet && !workers.empty()) {
    const dp::FlowTable& ft = *workers.front()->flow_table();
    std::printf("  flow table: %u flows, %.1f MiB per worker (%s)\n", ft.capacity(),
                double(ft.memory_bytes()) / (1 << 20),
                ft.in_dpdk_memory() ? "DPDK hugepages"
                                    : "anonymous memory, huge pages when the kernel grants them");
    std::fflush(stdout);
  }
  std::vector<dp::FlowTable*> flow_tables;  // every worker reads all of them (conntrack.hpp)
  for (auto& wk : workers) flow_tables.push_back(wk->flow_table());
  for (auto& wk : workers) wk->set_flow_tables(flow_tables.data(), unsigned(flow_tables.size()));
  launch.reserve(workers.size());
  w = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    launch.emplace_back(workers[w].get(), &stop);
    rte_eal_remote_launch(worker_main, &launch[w], lcore);
    w++;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);  // a control client that goes away is not fatal

  // Live config: file watch + control socket. A default socket path that cannot be used (not
  // root, another vanishd of the same node) only disables the socket; an explicit one is fatal.
  ctl::LiveConfigOptions lo;
  lo.config_path = o.config;
  lo.compile = compile_opts;
  lo.ports_from_cli = o.local_port >= 0 || o.fabric_port >= 0;
  lo.watch = !o.no_watch;
  if (o.ctl_socket != "none")
    lo.socket.path = o.ctl_socket.empty() ? ctl::default_ctl_socket(node) : o.ctl_socket;
  auto live = std::make_unique<ctl::LiveConfig>(
      lo, cfg, config_files, [&pub] { return pub.current(); },
      [&pub, &metrics, &peering](std::unique_ptr<dp::Snapshot> s, bool config_change) {
        metrics->label(*s);
        if (config_change) metrics->count_reload(true);  // not a rekey's republish
        pub.publish(std::move(s));
        if (peering) peering->published();  // its new inbound SAs are live now
      },
      [&metrics](bool error, const std::string& line) {
        if (error && line.rfind("vanishd: config rejected", 0) == 0) metrics->count_reload(false);
        std::FILE* f = error ? stderr : stdout;
        std::fprintf(f, "%s\n", line.c_str());
        std::fflush(f);
      });
  dp::ControlContext control;
  control.pub = &pub;
  for (auto& wk : workers) control.workers.push_back(wk.get());
  control.local_port = local_port;
  control.fabric_port = fabric_port;
  control.start_tsc = rte_rdtsc();
  live->set_extra([&control, &peering](const ctl::v1::Request& req, ctl::v1::Response* resp) {
    if (req.command_case() == ctl::v1::Request::kPeerRekey) {
      resp->set_ok(true);
      if (!peering) {
        resp->set_ok(false);
        resp->set_error("peering is not configured (static SAs): nothing to rekey");
        return true;
      }
      auto nodes = peering->rekey(req.peer_rekey().node());
      if (nodes.empty()) {
        resp->set_ok(false);
        resp->set_error("no peer named \"" + req.peer_rekey().node() + "\"");
        return true;
      }
      for (auto& n : nodes) resp->mutable_peer_rekey()->add_nodes(n);
      return true;
    }
    bool served = dp::handle_views(control, req, resp) || dp::handle_flows(control, req, resp);
    if (served && peering && req.command_case() == ctl::v1::Request::kPeers)
      ctl::peering::annotate_peer_rows(*peering, resp->mutable_peers());
    return served;
  });
  {
    std::string serr;
    if (!live->open_socket(&serr)) {
      std::fprintf(stderr, "vanishd: control socket: %s%s\n", serr.c_str(),
                   o.ctl_socket.empty() ? " (running without one; --ctl-socket PATH)" : "");
      if (!o.ctl_socket.empty()) g_signal.store(true);
    } else if (!lo.socket.path.empty() && !o.quiet) {
      std::printf("  control socket %s%s\n", lo.socket.path.c_str(),
                  lo.watch ? ", config file watched" : "");
      std::fflush(stdout);
    }
  }
  // Metrics: Prometheus over HTTP, polled below; DPDK telemetry. Like the control socket, a
  // default address that cannot be used only disables the endpoint; an explicit one is fatal.
  {
    std::vector<const dp::Worker*> ws;
    for (auto& wk : workers) ws.push_back(wk.get());
    metrics->set_workers(std::move(ws));
    if (!metrics->register_telemetry())
      std::fprintf(stderr, "vanishd: cannot register the /vanish telemetry commands\n");
  }
  dp::MetricsHttp metrics_http;
  if (o.metrics != "none") {
    std::string addr = o.metrics.empty() ? "127.0.0.1:15020" : o.metrics, merr;
    if (!metrics_http.open(addr, &merr)) {
      std::fprintf(stderr, "vanishd: metrics: %s%s\n", merr.c_str(),
                   o.metrics.empty() ? " (running without; --metrics HOST:PORT)" : "");
      if (!o.metrics.empty()) g_signal.store(true);
    } else if (!o.quiet) {
      std::printf("  metrics %s (port %u): GET /metrics\n", addr.c_str(), metrics_http.port());
      std::fflush(stdout);
    }
  }
  // Peering: credentials, listener, peers; SAs follow within milliseconds of the handshakes.
  auto peering_config = [&](const config::Config& c, bool first) {
    ctl::peering::PeeringSettings ps;
    std::vector<ctl::peering::PeerSpec> peers;
    std::string perr;
    std::string dir = std::filesystem::path(o.config).parent_path().string();
    if (!ctl::peering::peering_from_config(c, dir, &ps, &peers, &perr) ||
        !peering->configure(ps, peers, ctl::peering::static_inbound_spis(c), &perr)) {
      std::fprintf(stderr, "vanishd: peering: %s%s\n", perr.c_str(),
                   first ? "" : " (the previous peering settings stay)");
      return false;
    }
    if (first && !o.quiet) {
      std::printf("  peering: mTLS on %s (port %u) as %s, %zu peer(s)\n", ps.listen_address.c_str(),
                  peering->port(), cfg.this_node().c_str(), peers.size());
      std::fflush(stdout);
    }
    return true;
  };
  if (cfg.has_peering()) {
    peering = std::make_unique<ctl::peering::PeeringManager>(
        node, n_workers, [](bool error, const std::string& line) {
          std::FILE* f = error ? stderr : stdout;
          std::fprintf(f, "vanishd: %s\n", line.c_str());
          std::fflush(f);
        });
    if (!peering_config(cfg, true)) {
      peering.reset();
      g_signal.store(true);
    } else {
      metrics->extra = [&peering](std::string& out) {
        if (peering) ctl::peering::append_peering_metrics(*peering, out);
      };
    }
  }
  uint64_t applied_generation = pub.current()->generation;
  int rc = g_signal.load() ? 2 : 0;
  const uint64_t hz = rte_get_tsc_hz();
  uint64_t last_stats = rte_rdtsc();
  // Control thread: live config (file watch, control socket), shutdown and idleness; never
  // touches packets.
  while (!g_signal.load()) {
    if (peering)
      peering->poll_once(5);  // sleeps in poll() on the peering sockets
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    live->poll();
    if (peering) {
      // A config applied since the last tick may change peers or peering settings.
      uint64_t g = pub.current()->generation;
      if (g != applied_generation) {
        applied_generation = g;
        if (live->config().has_peering())
          peering_config(live->config(), false);
        else
          std::fprintf(stderr,
                       "vanishd: peering: the config no longer has a peering block; "
                       "peering goes on until restart\n");
      }
      if (peering->dirty()) {
        live->republish();
        applied_generation = pub.current()->generation;
      }
    }
    metrics_http.poll([&metrics] { return metrics->render(); });
    dp::views_tick(control);
    uint64_t now = rte_rdtsc();
    if (o.stats_interval_s && now - last_stats > o.stats_interval_s * hz) {
      last_stats = now;
      std::printf("%s", dp::stats_table(collect(node, workers)).c_str());
      std::fflush(stdout);
    }
    if (o.exit_when_idle) {
      bool all_idle = true;
      for (auto& wk : workers) {
        uint64_t last = wk->last_rx_tsc();
        if (!wk->running() || last == 0 || now - last < uint64_t(o.idle_ms) * hz / 1000) {
          all_idle = false;
          break;
        }
      }
      // Handoff rings must be empty too: everything received has been processed.
      for (auto* r : rings)
        if (rte_ring_count(r)) all_idle = false;
      if (all_idle) break;
    }
  }
  stop.store(true);
  rte_eal_mp_wait_lcore();

  dp::StatsView view = collect(node, workers);
  std::printf("vanishd: final counters\n%s", dp::stats_table(view).c_str());
  if (!o.stats_json.empty()) {
    std::ofstream f(o.stats_json);
    f << dp::stats_json(view) << "\n";
    if (!f) std::fprintf(stderr, "vanishd: cannot write %s\n", o.stats_json.c_str());
  }
  std::fflush(stdout);
  dp::stop_port(local_port);
  dp::stop_port(fabric_port);
  metrics.reset();  // disables the telemetry callbacks before the workers go
  peering.reset();  // closes the peering connections; its SAs die with the snapshot below
  workers.clear();
  live.reset();       // closes and unlinks the control socket
  pub_owner.reset();  // frees the last snapshot and the RCU state before EAL memory goes
  for (auto* r : rings) rte_ring_free(r);
  rte_mempool_free(pool);
  rte_eal_cleanup();
  return rc;
}
