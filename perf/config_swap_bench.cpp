// vanish-swap-bench: the "live updates" benchmark. Builds a large mesh config in memory (default
// 100k workloads, 10k services, 10k authorization policies on top of examples/node-a.textproto),
// times loading it from files, validating, compiling and publishing it, and counts the packets a
// running worker loses while the config is swapped K times under traffic.
//
//   vanish-swap-bench [--workloads N] [--services N] [--policies N] [--swaps K] [--packets P]
//                     [--rate PPS] [--flows F] [--json] ...   (--help lists them all)
//
// Harness (one process, root): EAL with --no-huge -m 256 (hugepages with VANISH_HUGEPAGES=1), a
// unique --file-prefix, -l 0,1. Two net_ring ports made with rte_eth_from_rings, so this program
// owns both ends: the generator (main lcore) enqueues valid outbound frames into the local port's
// RX ring and dequeues what the worker sends from the fabric port's TX ring; one dp::Worker runs
// on lcore 1; a control thread (sharing lcore 0's CPU with the generator) compiles and publishes
// the swaps while traffic flows.
//
// Accounting (after the run, once everything sent has been processed):
//   sent       frames the generator put into the local RX ring
//   ring_full  frames the generator could not enqueue (RX ring full: the worker was behind);
//              never sent, so not lost; reported separately
//   received   ESP frames that left the fabric port
//   drops      the worker's counters by reason; tx_full (the fabric TX ring, drained by this
//              program, was full) is the harness's, not the swap's, and is excluded from `lost`
//   lost       sent - received - tx_full drops: every stream flow is allowed in both variants, so
//              any other drop, or a frame that vanished, is a loss. Exit status 1 if lost != 0.
#include <malloc.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ctl/authz.hpp"
#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/validate.hpp"
#include "dataplane/metrics.hpp"
#include "dataplane/ports.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/worker.hpp"

#ifndef VANISH_SOURCE_ROOT
#define VANISH_SOURCE_ROOT "."
#endif

using namespace vanish;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  uint32_t workloads = 100000, services = 10000, policies = 10000;
  uint32_t namespaces = 1000, sas_per_ns = 2;
  unsigned swaps = 5;
  uint64_t packets = 2000000;
  double rate = 500000;  // packets per second offered by the generator
  unsigned flows = 64;
  unsigned gap_ms = 100;  // pause between swaps
  unsigned reps = 3;      // isolated validate/compile repetitions (median reported)
  std::string base = std::string(VANISH_SOURCE_ROOT) + "/examples/node-a.textproto";
  std::string tmpdir = "/tmp";
  std::string lcores = "0,1";
  bool json = false, keep_files = false, no_load = false;
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// ---- the generated mesh ------------------------------------------------------------------------

std::string raw_v4(uint32_t host) {
  std::string b(4, '\0');
  for (int i = 0; i < 4; i++) b[size_t(i)] = char(host >> (24 - 8 * i));
  return b;
}

// fd00:64:<site>::<low>: site 0xa / 0xb for node-a / node-b workloads, 0x96 for service VIPs.
std::string raw_v6(uint16_t site, uint32_t low) {
  std::string b(16, '\0');
  b[0] = char(0xfd);
  b[3] = 0x64;
  b[4] = char(site >> 8);
  b[5] = char(site);
  for (int i = 0; i < 4; i++) b[size_t(12 + i)] = char(low >> (24 - 8 * i));
  return b;
}

// Widened workload prefixes: node-a 10.64.0.0/12 + fd00:64:a::/64, node-b 10.80.0.0/12 +
// fd00:64:b::/64 (the examples' 10.1.0.0/24 etc. stay). Service VIPs: 10.97.0.0/16 (inside
// 10.96.0.0/12, where the example's httpbin VIP 10.96.0.20 lives) and fd00:64:96::/64.
constexpr uint32_t kNodeAV4 = 0x0a400000, kNodeBV4 = 0x0a500000, kVipV4 = 0x0a610000;
constexpr uint16_t kNodeAV6 = 0xa, kNodeBV6 = 0xb, kVipV6 = 0x96;

struct GenWorkload {
  bool node_b = false;
  uint32_t svc = 0;
  uint32_t v4 = 0;  // host order
  std::string raw6;
};

struct Mesh {
  config::Config a, b;           // the two variants swapped in turn (b = a + 1 workload + 1 policy)
  std::vector<GenWorkload> gen;  // generated workload i
  uint32_t n_services = 0;       // generated services (service j: endpoints i with i % n == j)
  uint32_t namespaces_used = 0;
};

std::string ns_name(uint32_t i) {
  return "ns-" + std::to_string(i);
}
std::string svc_host(uint32_t j, uint32_t n_ns) {
  return "svc-" + std::to_string(j) + "." + ns_name(j % n_ns) + ".svc.cluster.local";
}

void add_policy(config::Config& c, uint32_t p, const std::string& ns, bool allow) {
  auto* a = c.add_authorizations();
  a->set_name("pol-" + std::to_string(p));
  a->set_namespace_(ns);
  a->set_scope(istio::security::NAMESPACE);
  a->set_action(allow ? istio::security::ALLOW : istio::security::DENY);
  if (allow) {
    // From a named principal, namespace "default" (sleep) or any ns-* namespace, to the
    // service's target port or a per-policy port.
    auto* r = a->add_rules();
    auto* who = r->add_clauses();
    who->add_matches()->add_principals()->set_exact("cluster.local/ns/" + ns + "/sa/sa-0");
    who->add_matches()->add_namespaces()->set_exact("default");
    who->add_matches()->add_namespaces()->set_prefix("ns-");
    auto* port = r->add_clauses()->add_matches();
    port->add_destination_ports(8080);
    port->add_destination_ports(9000 + p % 100);
  } else {
    // Sources the stream never uses: namespace "untrusted", principals "blocked-*", a
    // non-existent service account on port 22, a documentation CIDR.
    auto* m = a->add_rules()->add_clauses();
    m->add_matches()->add_namespaces()->set_exact("untrusted");
    m->add_matches()->add_principals()->set_prefix("cluster.local/ns/blocked-");
    auto* r2 = a->add_rules();
    auto* sa = r2->add_clauses()->add_matches()->add_service_accounts();
    sa->set_namespace_(ns);
    sa->set_service_account("sa-banned");
    r2->add_clauses()->add_matches()->add_destination_ports(22);
    auto* ip = a->add_rules()->add_clauses()->add_matches()->add_source_ips();
    ip->set_address(raw_v4(0xc0000200 + (p % 256)));  // 192.0.2.x/32
    ip->set_length(32);
  }
}

bool build_mesh(const Options& o, Mesh* m, std::vector<std::string>* errors) {
  config::Config& c = m->a;
  if (!ctl::load_config(o.base, &c, errors)) return false;
  for (auto& n : *c.mutable_nodes()) {
    if (n.name() == "node-a") {
      n.add_workload_prefixes("10.64.0.0/12");
      n.add_workload_prefixes("fd00:64:a::/64");
    } else if (n.name() == "node-b") {
      n.add_workload_prefixes("10.80.0.0/12");
      n.add_workload_prefixes("fd00:64:b::/64");
    }
  }
  const uint32_t n_ns = std::max<uint32_t>(1, o.namespaces);
  const uint32_t n_svc = o.services;
  // Services: service j lives in namespace j % n_ns; VIP 10.97.x.y / fd00:64:96::j+1, 80 -> 8080.
  for (uint32_t j = 0; j < n_svc; j++) {
    auto* s = c.add_services();
    s->set_name("svc-" + std::to_string(j));
    s->set_namespace_(ns_name(j % n_ns));
    s->set_hostname(svc_host(j, n_ns));
    s->add_addresses()->set_address(raw_v4(kVipV4 + 1 + j));
    s->add_addresses()->set_address(raw_v6(kVipV6, j + 1));
    auto* p = s->add_ports();
    p->set_service_port(80);
    p->set_target_port(8080);
  }
  // Workloads: workload i is an endpoint of service i % n_svc and takes its namespace. Services
  // j % 4 == 0 have every endpoint on node-b (the stream's VIP flows use them, so that no
  // endpoint is hairpinned to a node-a workload whose MAC is unknown); the others alternate.
  uint32_t next[2] = {0, 0};
  std::vector<bool> ns_used(n_ns, false);
  m->gen.reserve(o.workloads);
  for (uint32_t i = 0; i < o.workloads; i++) {
    uint32_t svc = n_svc ? i % n_svc : 0;
    uint32_t ns = n_svc ? svc % n_ns : i % n_ns;
    ns_used[ns] = true;
    bool node_b = (n_svc && svc % 4 == 0) || ((i + (n_svc ? i / n_svc : 0)) & 1) != 0;
    uint32_t k = ++next[node_b];
    GenWorkload g;
    g.node_b = node_b;
    g.svc = svc;
    g.v4 = (node_b ? kNodeBV4 : kNodeAV4) + k;
    g.raw6 = raw_v6(node_b ? kNodeBV6 : kNodeAV6, k);
    auto* w = c.add_workloads();
    std::string name = "w-" + std::to_string(i);
    w->set_uid("Kubernetes//Pod/" + ns_name(ns) + "/" + name);
    w->set_name(name);
    w->set_namespace_(ns_name(ns));
    w->add_addresses(raw_v4(g.v4));
    w->add_addresses(g.raw6);
    w->set_trust_domain("cluster.local");
    w->set_service_account("sa-" +
                           std::to_string((i / n_ns) % std::max<uint32_t>(1, o.sas_per_ns)));
    w->set_node(node_b ? "node-b" : "node-a");
    w->set_workload_name("app-" + std::to_string(svc));
    w->set_workload_type(istio::workload::POD);
    if (n_svc) {
      auto& pl = (*w->mutable_services())[ns_name(ns) + "/" + svc_host(svc, n_ns)];
      auto* p = pl.add_ports();
      p->set_service_port(80);
      p->set_target_port(8080);
    }
    m->gen.push_back(std::move(g));
  }
  m->n_services = n_svc;
  for (bool u : ns_used) m->namespaces_used += u ? 1 : 0;
  // Policies over the namespaces in use, alternating ALLOW / DENY.
  std::vector<uint32_t> used;
  for (uint32_t i = 0; i < n_ns; i++)
    if (ns_used[i]) used.push_back(i);
  if (used.empty()) used.push_back(0);
  for (uint32_t p = 0; p < o.policies; p++)
    add_policy(c, p, ns_name(used[p % used.size()]), p % 2 == 0);

  // Variant b: one more workload on node-b and one more (DENY) policy, appended so that every
  // index of variant a keeps its meaning.
  m->b = m->a;
  auto* w = m->b.add_workloads();
  w->set_uid("Kubernetes//Pod/ns-extra/w-extra");
  w->set_name("w-extra");
  w->set_namespace_("ns-extra");
  w->add_addresses(raw_v4(kNodeBV4 + next[1] + 1));
  w->add_addresses(raw_v6(kNodeBV6, next[1] + 1));
  w->set_service_account("extra");
  w->set_node("node-b");
  add_policy(m->b, o.policies, used[0] < n_ns ? ns_name(used[0]) : "ns-0", false);
  m->b.mutable_authorizations(m->b.authorizations_size() - 1)->set_name("pol-extra");
  return true;
}

// ---- traffic -----------------------------------------------------------------------------------

struct Flow {
  IpAddr src, dst;             // dst: a workload, or a service VIP (port 80)
  std::vector<IpAddr> checks;  // the destination workloads (a VIP's endpoints) for the authz check
  bool vip = false;
  std::vector<uint8_t> frame;
};

std::vector<uint8_t> udp_frame(const IpAddr& src, const IpAddr& dst, uint16_t sport,
                               uint16_t dport) {
  const uint8_t dmac[6] = {0x02, 0, 0, 0, 0x10, 0x01};  // node-a's local_mac
  const uint8_t smac[6] = {0x02, 0, 0, 0xaa, 0, 0x10};
  bool v6 = !src.is_v4();
  size_t l3 = v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr);
  size_t payload = v6 ? 16 : 22;  // 78 B / 64 B frames
  std::vector<uint8_t> f(sizeof(rte_ether_hdr) + l3 + sizeof(rte_udp_hdr) + payload, 0);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(f.data());
  std::memcpy(&eth->dst_addr, dmac, 6);
  std::memcpy(&eth->src_addr, smac, 6);
  eth->ether_type = rte_cpu_to_be_16(v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
  uint8_t* ip = f.data() + sizeof(rte_ether_hdr);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + l3);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(dport);
  udp->dgram_len = rte_cpu_to_be_16(uint16_t(sizeof(rte_udp_hdr) + payload));
  uint8_t* pl = reinterpret_cast<uint8_t*>(udp + 1);
  for (size_t i = 0; i < payload; i++) pl[i] = uint8_t(i + sport);
  if (v6) {
    auto* h = reinterpret_cast<rte_ipv6_hdr*>(ip);
    h->vtc_flow = rte_cpu_to_be_32(6u << 28);
    h->payload_len = udp->dgram_len;
    h->proto = IPPROTO_UDP;
    h->hop_limits = 64;
    std::memcpy(h->src_addr, src.b.data(), 16);
    std::memcpy(h->dst_addr, dst.b.data(), 16);
    udp->dgram_cksum = rte_ipv6_udptcp_cksum(h, udp);
  } else {
    auto* h = reinterpret_cast<rte_ipv4_hdr*>(ip);
    h->version_ihl = 0x45;
    h->total_length = rte_cpu_to_be_16(uint16_t(l3 + sizeof(rte_udp_hdr) + payload));
    h->packet_id = rte_cpu_to_be_16(sport);
    h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    h->time_to_live = 64;
    h->next_proto_id = IPPROTO_UDP;
    std::memcpy(&h->src_addr, src.v4_bytes(), 4);
    std::memcpy(&h->dst_addr, dst.v4_bytes(), 4);
    h->hdr_checksum = rte_ipv4_cksum(h);
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(h, udp);
  }
  return f;
}

IpAddr from_raw(const std::string& raw) {
  IpAddr a;
  IpAddr::from_bytes(raw, &a);
  return a;
}

IpAddr ip(const char* s) {
  IpAddr a;
  IpAddr::parse(s, &a);
  return a;
}

// Flows 0-1: sleep -> httpbin-1 (v4, v6); 2-3: sleep -> the httpbin VIP :80; then, per 8 flows,
// 2 to generated service VIPs (all endpoints on node-b) and 6 to generated node-b workloads from
// sleep or a generated node-a workload; families alternate. Destination port 8080 (VIPs: 80).
std::vector<Flow> make_flows(const Mesh& m, unsigned n) {
  std::vector<const GenWorkload*> local, remote;
  for (const auto& g : m.gen) (g.node_b ? remote : local).push_back(&g);
  std::vector<uint32_t> remote_services;  // services whose endpoints are all on node-b
  for (uint32_t j = 0; j < m.n_services && j < m.gen.size(); j += 4) remote_services.push_back(j);
  auto addr = [](const GenWorkload& g, bool v6) {
    return v6 ? from_raw(g.raw6) : IpAddr::v4_host(g.v4);
  };
  std::vector<Flow> flows;
  for (unsigned f = 0; f < n; f++) {
    Flow fl;
    bool v6 = f % 2 == 1;
    fl.src = v6 ? ip("fd00:10:1::10") : ip("10.1.0.10");  // sleep
    if (f < 2 || remote.empty()) {
      fl.dst = v6 ? ip("fd00:10:2::20") : ip("10.2.0.20");
      fl.checks = {fl.dst};
    } else if (f < 4) {
      fl.vip = true;
      fl.dst = v6 ? ip("fd00:96::20") : ip("10.96.0.20");
      fl.checks = {v6 ? ip("fd00:10:2::20") : ip("10.2.0.20"),
                   v6 ? ip("fd00:10:2::21") : ip("10.2.0.21")};
    } else if (f % 8 < 2 && !remote_services.empty()) {
      uint32_t j = remote_services[(size_t(f) * 31) % remote_services.size()];
      fl.vip = true;
      fl.dst = from_raw(v6 ? raw_v6(kVipV6, j + 1) : raw_v4(kVipV4 + 1 + j));
      for (size_t i = j; i < m.gen.size(); i += m.n_services)
        fl.checks.push_back(addr(m.gen[i], v6));
    } else {
      fl.dst = addr(*remote[(size_t(f) * 7919) % remote.size()], v6);
      fl.checks = {fl.dst};
      if (f % 8 >= 5 && !local.empty())
        fl.src = addr(*local[(size_t(f) * 104729) % local.size()], v6);
    }
    fl.frame = udp_frame(fl.src, fl.dst, uint16_t(10000 + f), fl.vip ? 80 : 8080);
    flows.push_back(std::move(fl));
  }
  return flows;
}

// Is the frame ESP-in-UDP (dport 4500) over IPv4 or IPv6?
bool is_esp(const rte_mbuf* m) {
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m);
  if (len < 14 + 20 + 8) return false;
  uint16_t et = uint16_t(p[12] << 8 | p[13]);
  size_t udp = 0;
  if (et == RTE_ETHER_TYPE_IPV4 && p[14 + 9] == IPPROTO_UDP) udp = 14 + size_t(p[14] & 0xf) * 4;
  if (et == RTE_ETHER_TYPE_IPV6 && len >= 14 + 40 + 8 && p[14 + 6] == IPPROTO_UDP) udp = 14 + 40;
  return udp && len >= udp + 8 && (p[udp + 2] << 8 | p[udp + 3]) == 4500;
}

struct Harness {
  rte_mempool* pool = nullptr;
  rte_ring *local_rx = nullptr, *local_tx = nullptr, *fabric_rx = nullptr, *fabric_tx = nullptr;
  rte_ring* handoff = nullptr;
  int local_port = -1, fabric_port = -1;
};

struct Traffic {
  std::atomic<uint64_t> sent{0};
  std::atomic<bool> swaps_done{false};
  std::atomic<uint64_t> ring_full{0};  // written by the generator only
  uint64_t received = 0, not_esp = 0, local_out = 0;
};

// Dequeues what the worker sent on both ports; counts and frees it.
void drain(const Harness& h, Traffic& t) {
  rte_mbuf* out[256];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(h.fabric_tx, reinterpret_cast<void**>(out), 256, nullptr))) {
    for (unsigned i = 0; i < n; i++) {
      if (is_esp(out[i]))
        t.received++;
      else
        t.not_esp++;
    }
    rte_pktmbuf_free_bulk(out, n);
  }
  while ((n = rte_ring_dequeue_burst(h.local_tx, reinterpret_cast<void**>(out), 256, nullptr))) {
    t.local_out += n;
    rte_pktmbuf_free_bulk(out, n);
  }
}

struct SwapRecord {
  char variant = 'a';
  double compile_ms = 0, publish_ms = 0, grace_ms = 0;
  uint64_t sent_during = 0, drops_during = 0, ring_full_during = 0;
  bool ok = false;
};

int worker_main(void* arg) {
  auto* p = static_cast<std::pair<dp::Worker*, std::atomic<bool>*>*>(arg);
  p->first->run(*p->second);
  return 0;
}

struct Loaded {
  std::string format;
  double ms = 0, mib = 0;
  bool ok = false;
};

Loaded time_load(const config::Config& cfg, ctl::ConfigFormat fmt, const std::string& path) {
  Loaded r;
  r.format = ctl::format_name(fmt);
  std::string data;
  if (!ctl::config_to_string(cfg, fmt, &data)) return r;
  {
    std::ofstream f(path, std::ios::binary);
    f << data;
    if (!f) return r;
  }
  r.mib = double(data.size()) / (1 << 20);
  data.clear();
  data.shrink_to_fit();
  config::Config out;
  std::vector<std::string> errors;
  auto t0 = Clock::now();
  r.ok = ctl::load_config(path, &out, &errors);
  r.ms = ms_since(t0);
  r.ok = r.ok && out.workloads_size() == cfg.workloads_size() &&
         out.services_size() == cfg.services_size() &&
         out.authorizations_size() == cfg.authorizations_size();
  for (size_t i = 0; i < errors.size() && i < 5; i++)
    std::fprintf(stderr, "load %s: %s\n", path.c_str(), errors[i].c_str());
  return r;
}

size_t heap_bytes() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"vanish-swap-bench: build, load, compile and live-swap a large mesh config"};
  app.add_option("--workloads", o.workloads, "generated workloads (both nodes, v4 + v6)");
  app.add_option("--services", o.services, "generated services (VIP, 80 -> 8080)");
  app.add_option("--policies", o.policies, "generated NAMESPACE policies (ALLOW/DENY)");
  app.add_option("--namespaces", o.namespaces, "namespaces the workloads spread over");
  app.add_option("--sas-per-namespace", o.sas_per_ns, "service accounts per namespace");
  app.add_option("--swaps", o.swaps, "compile+publish swaps under traffic (variants a/b)");
  app.add_option("--packets", o.packets, "packets to send at least (runs until the swaps end)");
  app.add_option("--rate", o.rate, "offered load, packets per second");
  app.add_option("--flows", o.flows, "flows in the stream")->check(CLI::Range(2u, 4096u));
  app.add_option("--gap-ms", o.gap_ms, "pause between swaps (ms)");
  app.add_option("--reps", o.reps, "isolated validate/compile repetitions")
      ->check(CLI::Range(1u, 100u));
  app.add_option("--base", o.base, "base config (default examples/node-a.textproto)");
  app.add_option("--tmpdir", o.tmpdir, "where the load-test files are written");
  app.add_option("--lcores", o.lcores, "EAL -l: the main lcore, then the worker's");
  app.add_flag("--keep-files", o.keep_files, "keep the written config files");
  app.add_flag("--no-load", o.no_load, "skip the file load timings");
  app.add_flag("--json", o.json, "also print one JSON line with every figure");
  CLI11_PARSE(app, argc, argv);

  // ---- the config --------------------------------------------------------------------------
  Mesh mesh;
  std::vector<std::string> load_errors;
  auto t0 = Clock::now();
  if (!build_mesh(o, &mesh, &load_errors)) {
    for (auto& e : load_errors) std::fprintf(stderr, "base config: %s\n", e.c_str());
    return 2;
  }
  double generate_ms = ms_since(t0);
  for (const config::Config* c : {&mesh.a, &mesh.b}) {
    std::vector<ctl::ConfigError> errs;
    if (!ctl::validate_config(*c, &errs)) {
      std::fprintf(stderr, "generated config (variant %c) is invalid: %zu error(s)\n",
                   c == &mesh.a ? 'a' : 'b', errs.size());
      for (size_t i = 0; i < errs.size() && i < 20; i++)
        std::fprintf(stderr, "  %s\n", errs[i].str().c_str());
      return 2;
    }
  }

  std::vector<Loaded> loads;
  if (!o.no_load) {
    std::string stem = o.tmpdir + "/vanish-swap-bench-" + std::to_string(getpid());
    for (auto [fmt, ext] : {std::pair{ctl::ConfigFormat::kText, ".textproto"},
                            std::pair{ctl::ConfigFormat::kBinary, ".pb"},
                            std::pair{ctl::ConfigFormat::kJson, ".json"}}) {
      std::string path = stem + ext;
      loads.push_back(time_load(mesh.a, fmt, path));
      if (o.keep_files)
        std::printf("kept %s\n", path.c_str());
      else
        std::remove(path.c_str());
      if (!loads.back().ok) {
        std::fprintf(stderr, "loading the %s file failed\n", loads.back().format.c_str());
        return 2;
      }
    }
  }

  std::vector<double> validate_ms, compile_ms;
  for (unsigned r = 0; r < o.reps; r++) {
    std::vector<ctl::ConfigError> errs;
    auto v0 = Clock::now();
    ctl::validate_config(mesh.a, &errs);
    validate_ms.push_back(ms_since(v0));
  }
  std::unique_ptr<dp::Snapshot> first;
  size_t snapshot_heap = 0;
  for (unsigned r = 0; r < o.reps; r++) {
    first.reset();
    std::vector<ctl::ConfigError> errs;
    size_t h0 = heap_bytes();
    auto c0 = Clock::now();
    first = ctl::compile_snapshot(mesh.a, ctl::CompileOptions{1, 1}, nullptr, &errs);
    compile_ms.push_back(ms_since(c0));
    snapshot_heap = heap_bytes() - std::min(h0, heap_bytes());
    if (!first) {
      std::fprintf(stderr, "compile_snapshot failed:\n");
      for (auto& e : errs) std::fprintf(stderr, "  %s\n", e.str().c_str());
      return 2;
    }
  }
  // A republish of the same config (a rekey: only SAs change), timed against `first`.
  std::vector<double> republish_ms;
  for (unsigned r = 0; r < o.reps; r++) {
    std::vector<ctl::ConfigError> errs;
    ctl::CompileOptions co{1, 2};
    co.same_config = true;
    auto c0 = Clock::now();
    auto again = ctl::compile_snapshot(mesh.a, co, first.get(), &errs);
    republish_ms.push_back(ms_since(c0));
    if (!again) {
      std::fprintf(stderr, "compile_snapshot (same config) failed\n");
      return 2;
    }
  }
  // The metrics labels (Metrics::label, on the control thread before each publish): the first
  // snapshot's names, a full compile's (every name built and compared), and a republish's.
  std::vector<double> label_first_ms, label_compile_ms, label_republish_ms;
  for (unsigned r = 0; r < o.reps; r++) {
    std::vector<ctl::ConfigError> errs;
    dp::Metrics metrics(dp::MetricsSources{});
    auto next = ctl::compile_snapshot(mesh.a, ctl::CompileOptions{1, 2}, first.get(), &errs);
    ctl::CompileOptions co{1, 3};
    co.same_config = true;
    auto again = ctl::compile_snapshot(mesh.a, co, next.get(), &errs);
    if (!next || !again) {
      std::fprintf(stderr, "compile_snapshot (labels) failed\n");
      return 2;
    }
    auto l0 = Clock::now();
    metrics.label(*first);
    label_first_ms.push_back(ms_since(l0));
    l0 = Clock::now();
    metrics.label(*next);
    label_compile_ms.push_back(ms_since(l0));
    l0 = Clock::now();
    metrics.label(*again);
    label_republish_ms.push_back(ms_since(l0));
  }
  // The authorization engine, built on its own (compile_snapshot may build it too once the
  // data plane enforces policy), and a check that the destination allows every stream flow.
  auto a0 = Clock::now();
  std::unique_ptr<authz::Engine> engine = authz::Engine::build(mesh.a);
  double authz_ms = ms_since(a0);
  std::vector<Flow> flows = make_flows(mesh, o.flows);
  unsigned allowed = 0, vip_flows = 0;
  for (const Flow& f : flows) {
    bool all = !f.checks.empty();
    for (const IpAddr& dst : f.checks) {
      authz::Request rq;
      rq.src_identity = engine->identity_of_workload(engine->workload_by_address(f.src));
      rq.src_ip = f.src;
      rq.dst_ip = dst;
      rq.dst_port = 8080;
      rq.dst_workload = engine->workload_by_address(dst);
      all = all && engine->evaluate(rq).allowed;
    }
    allowed += all ? 1 : 0;
    vip_flows += f.vip ? 1 : 0;
  }
  size_t engine_bytes = engine->memory_bytes();
  engine.reset();

  // ---- EAL, ports, worker ------------------------------------------------------------------
  bool huge =
      std::getenv("VANISH_HUGEPAGES") && std::string(std::getenv("VANISH_HUGEPAGES")) == "1";
  std::string prefix = "vswap" + std::to_string(getpid());
  std::vector<std::string> eal = {"vanish-swap-bench", "-l",   o.lcores,      "--no-pci",
                                  "--file-prefix",     prefix, "--log-level", "error",
                                  "--no-telemetry",    "-m",   "256"};
  if (huge)
    eal.push_back("--in-memory");
  else
    eal.push_back("--no-huge");
  std::vector<char*> eal_argv;
  for (auto& s : eal) eal_argv.push_back(s.data());
  if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "EAL init failed: %s\n", rte_strerror(rte_errno));
    return 2;
  }
  if (rte_lcore_count() != 2) {
    std::fprintf(stderr, "need exactly 2 lcores (--lcores), got %u\n", rte_lcore_count());
    rte_eal_cleanup();
    return 2;
  }
  Harness h;
  int socket = int(rte_socket_id());
  // Frames are < 200 B after encapsulation: small buffers, so that the fabric TX ring can hold
  // 16k frames (the generator thread that drains it shares its CPU with the compiles).
  h.pool =
      rte_pktmbuf_pool_create("vswap_mbufs", 32767, 256, 0, RTE_PKTMBUF_HEADROOM + 512, socket);
  auto ring = [&](const char* name, unsigned size) {
    return rte_ring_create(name, size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  };
  h.local_rx = ring("vswap_local_rx", 1024);
  h.local_tx = ring("vswap_local_tx", 1024);
  h.fabric_rx = ring("vswap_fabric_rx", 1024);
  h.fabric_tx = ring("vswap_fabric_tx", 16384);
  h.handoff = rte_ring_create("vswap_handoff", 1024, socket, RING_F_SC_DEQ);
  if (!h.pool || !h.local_rx || !h.local_tx || !h.fabric_rx || !h.fabric_tx || !h.handoff) {
    std::fprintf(stderr, "cannot create the pool or rings: %s\n", rte_strerror(rte_errno));
    rte_eal_cleanup();
    return 2;
  }
  h.local_port =
      rte_eth_from_rings("vswap_local", &h.local_rx, 1, &h.local_tx, 1, unsigned(socket));
  h.fabric_port =
      rte_eth_from_rings("vswap_fabric", &h.fabric_rx, 1, &h.fabric_tx, 1, unsigned(socket));
  std::string err;
  for (int p : {h.local_port, h.fabric_port}) {
    dp::PortSetup ps;
    ps.port = uint16_t(p);
    ps.pool = h.pool;
    if (p < 0 || !dp::setup_port(ps, &err)) {
      std::fprintf(stderr, "port setup failed: %s\n", p < 0 ? "rte_eth_from_rings" : err.c_str());
      rte_eal_cleanup();
      return 2;
    }
  }

  auto pub = std::make_unique<dp::SnapshotPublisher>(1);
  pub->publish(std::move(first));
  dp::WorkerConfig wc;
  wc.local_port = uint16_t(h.local_port);
  wc.fabric_port = uint16_t(h.fabric_port);
  wc.pool = h.pool;
  wc.flow_capacity = 65536;
  wc.socket_id = socket;
  auto worker = std::make_unique<dp::Worker>(wc, pub.get(), &h.handoff, 1);
  if (!worker->ok()) {
    std::fprintf(stderr, "cannot create the worker's flow table\n");
    rte_eal_cleanup();
    return 2;
  }
  dp::FlowTable* tables[1] = {worker->flow_table()};
  worker->set_flow_tables(tables, 1);
  std::atomic<bool> stop{false};
  std::pair<dp::Worker*, std::atomic<bool>*> launch{worker.get(), &stop};
  rte_eal_remote_launch(worker_main, &launch, rte_get_next_lcore(-1, 1, 0));

  // ---- swaps under traffic -----------------------------------------------------------------
  Traffic t;
  std::vector<SwapRecord> swaps(o.swaps);
  std::vector<std::string> swap_errors;
  std::thread control([&] {
    // Warm up: the stream's flows exist before the first swap.
    uint64_t warm = std::min<uint64_t>(o.packets / 10, 20000);
    while (t.sent.load() < warm) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(o.gap_ms));
    for (unsigned k = 0; k < o.swaps; k++) {
      SwapRecord& r = swaps[k];
      r.variant = k % 2 == 0 ? 'b' : 'a';
      const config::Config& cfg = r.variant == 'b' ? mesh.b : mesh.a;
      uint64_t s0 = t.sent.load(), f0 = t.ring_full.load();
      uint64_t d0 = worker->counters().total_drops();
      std::vector<ctl::ConfigError> errs;
      auto c0 = Clock::now();
      auto snap = ctl::compile_snapshot(cfg, ctl::CompileOptions{1, 2 + k}, pub->current(), &errs);
      r.compile_ms = ms_since(c0);
      if (!snap) {
        for (auto& e : errs) swap_errors.push_back(e.str());
        continue;
      }
      auto p0 = Clock::now();
      pub->publish(std::move(snap));
      r.publish_ms = ms_since(p0);
      // publish() = swap + grace period + freeing the old snapshot; one more grace period on its
      // own tells the two costs apart.
      auto g0 = Clock::now();
      rte_rcu_qsbr_check(pub->qsbr(), rte_rcu_qsbr_start(pub->qsbr()), true);
      r.grace_ms = ms_since(g0);
      r.ok = true;
      r.sent_during = t.sent.load() - s0;
      r.drops_during = worker->counters().total_drops() - d0;
      r.ring_full_during = t.ring_full.load() - f0;
      std::this_thread::sleep_for(std::chrono::milliseconds(o.gap_ms));
    }
    t.swaps_done.store(true);
  });

  // Generator (main lcore): a token bucket at --rate, at most 512 packets of backlog, so a
  // descheduled generator does not flood the ring when it comes back.
  const uint64_t hz = rte_get_tsc_hz();
  const double per_tsc = o.rate / double(hz);
  double tokens = 0;
  uint64_t last = rte_rdtsc(), start = last, done_at = 0;
  unsigned next_flow = 0;
  uint64_t sent = 0;
  rte_mbuf* burst[32];
  for (;;) {
    drain(h, t);
    uint64_t now = rte_rdtsc();
    tokens = std::min(512.0, tokens + double(now - last) * per_tsc);
    last = now;
    if (sent >= o.packets && t.swaps_done.load(std::memory_order_relaxed)) {
      if (!done_at) done_at = now;
      if (now - done_at > hz / 20) break;  // 50 ms of traffic on the final snapshot
    }
    if (tokens < 32) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
      continue;
    }
    unsigned n = 32;
    if (rte_ring_free_count(h.local_rx) < n) {  // the worker is behind: not offered, not lost
      t.ring_full.store(t.ring_full.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      tokens -= n;
      continue;
    }
    if (rte_pktmbuf_alloc_bulk(h.pool, burst, n) != 0) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
      continue;
    }
    for (unsigned i = 0; i < n; i++) {
      const std::vector<uint8_t>& f = flows[next_flow].frame;
      next_flow = next_flow + 1 == flows.size() ? 0 : next_flow + 1;
      std::memcpy(rte_pktmbuf_mtod(burst[i], uint8_t*), f.data(), f.size());
      burst[i]->data_len = uint16_t(f.size());
      burst[i]->pkt_len = uint32_t(f.size());
    }
    unsigned q = rte_ring_enqueue_burst(h.local_rx, reinterpret_cast<void**>(burst), n, nullptr);
    if (q < n) {
      t.ring_full.store(t.ring_full.load(std::memory_order_relaxed) + (n - q),
                        std::memory_order_relaxed);
      rte_pktmbuf_free_bulk(burst + q, n - q);
    }
    sent += q;
    t.sent.store(sent, std::memory_order_relaxed);
    tokens -= n;
  }
  double run_s = double(rte_rdtsc() - start) / double(hz);
  control.join();
  // Let the worker finish what is queued: until everything sent is accounted for, or 1 s.
  uint64_t wait_until = rte_rdtsc() + hz;
  while (rte_rdtsc() < wait_until) {
    drain(h, t);
    const dp::WorkerCounters& c = worker->counters();
    if (rte_ring_count(h.local_rx) == 0 && c.local_rx == sent &&
        t.received + t.not_esp + c.total_drops() >= sent)
      break;
    rte_delay_us_sleep(1000);
  }
  stop.store(true);
  rte_eal_mp_wait_lcore();
  drain(h, t);

  // ---- report ------------------------------------------------------------------------------
  const dp::WorkerCounters c = worker->counters();
  uint64_t harness_drops = c.drops[unsigned(dp::DropReason::kTxFull)];
  int64_t lost = int64_t(sent) - int64_t(t.received) - int64_t(harness_drops);
  int64_t unaccounted = int64_t(sent) - int64_t(t.received + t.not_esp) - int64_t(c.total_drops());
  std::vector<double> swap_compile, swap_publish, swap_grace;
  unsigned swaps_ok = 0;
  uint64_t sent_in_swaps = 0;
  for (auto& r : swaps) {
    if (!r.ok) continue;
    swaps_ok++;
    swap_compile.push_back(r.compile_ms);
    swap_publish.push_back(r.publish_ms);
    swap_grace.push_back(r.grace_ms);
    sent_in_swaps += r.sent_during;
  }
  auto maxv = [](const std::vector<double>& v) {
    return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
  };
  double loadavg[1] = {0};
  getloadavg(loadavg, 1);

  std::printf(
      "vanish-swap-bench: %zu workloads (%u generated, %u namespaces, %zu identities), "
      "%d services, %d policies; variant b = +1 workload +1 policy\n",
      size_t(mesh.a.workloads_size()), o.workloads, mesh.namespaces_used,
      pub->current() ? pub->current()->identities.size() : size_t(0), mesh.a.services_size(),
      mesh.a.authorizations_size());
  std::printf("machine: %ld CPUs, load %.2f, %s\n\n", sysconf(_SC_NPROCESSORS_ONLN), loadavg[0],
              huge ? "hugepages" : "--no-huge");
  std::printf("%-44s %10s\n", "step (no traffic; median of --reps)", "ms");
  std::printf("%-44s %10.1f\n", "generate in memory (protobuf)", generate_ms);
  for (const Loaded& l : loads) {
    char label[64];
    std::snprintf(label, sizeof label, "load_config %s file (%.1f MiB)", l.format.c_str(), l.mib);
    std::printf("%-44s %10.1f\n", label, l.ms);
  }
  std::printf("%-44s %10.1f\n", "validate_config", median(validate_ms));
  std::printf("%-44s %10.1f\n", "compile_snapshot (validates too)", median(compile_ms));
  std::printf("%-44s %10.1f\n", "republish, SAs only (same config)", median(republish_ms));
  std::printf("%-44s %10.1f\n", "metrics labels: first snapshot", median(label_first_ms));
  std::printf("%-44s %10.1f\n", "metrics labels: after a compile", median(label_compile_ms));
  std::printf("%-44s %10.3f\n", "metrics labels: after a republish", median(label_republish_ms));
  std::printf("%-44s %10.1f\n", "authz::Engine::build (alone; also in compile)", authz_ms);
  std::printf("%-44s %10.1f\n", "snapshot heap (MiB)", double(snapshot_heap) / (1 << 20));
  std::printf("%-44s %10.1f\n", "authz engine memory (MiB)", double(engine_bytes) / (1 << 20));
  std::printf(
      "\nswaps under traffic (%.0f pps offered, %u flows of which %u to VIPs, %u/%u allowed by "
      "policy at their destinations):\n",
      o.rate, unsigned(flows.size()), vip_flows, allowed, unsigned(flows.size()));
  std::printf("%5s %7s %11s %11s %9s %12s %12s %12s\n", "swap", "variant", "compile ms",
              "publish ms", "grace ms", "pkts during", "drops during", "ring full");
  for (size_t k = 0; k < swaps.size(); k++) {
    const SwapRecord& r = swaps[k];
    if (!r.ok) {
      std::printf("%5zu %7c %12.1f %12s\n", k + 1, r.variant, r.compile_ms, "FAILED");
      continue;
    }
    std::printf("%5zu %7c %11.1f %11.3f %9.3f %12llu %12llu %12llu\n", k + 1, r.variant,
                r.compile_ms, r.publish_ms, r.grace_ms, (unsigned long long)r.sent_during,
                (unsigned long long)r.drops_during, (unsigned long long)r.ring_full_during);
  }
  for (auto& e : swap_errors) std::printf("  swap error: %s\n", e.c_str());
  std::printf(
      "\npackets: sent %llu, received (ESP on fabric) %llu, ring full (not sent) %llu, "
      "in %.2f s\n",
      (unsigned long long)sent, (unsigned long long)t.received,
      (unsigned long long)t.ring_full.load(), run_s);
  std::printf(
      "worker: local_rx %llu, encrypted %llu, fabric_tx %llu, flows created %llu, "
      "reclassified %llu\n",
      (unsigned long long)c.local_rx, (unsigned long long)c.encrypted,
      (unsigned long long)c.fabric_tx, (unsigned long long)c.flows_created,
      (unsigned long long)c.flows_reclassified);
  std::printf("drops:");
  nlohmann::json drops = nlohmann::json::object();
  for (unsigned r = 0; r < dp::kDropReasonCount; r++) {
    if (!c.drops[r]) continue;
    std::printf(" %s %llu", dp::drop_reason_name(dp::DropReason(r)),
                (unsigned long long)c.drops[r]);
    drops[dp::drop_reason_name(dp::DropReason(r))] = c.drops[r];
  }
  std::printf("%s\n", drops.empty() ? " none" : "");
  if (t.not_esp || t.local_out || unaccounted)
    std::printf(
        "anomalies: non-ESP on fabric %llu, frames out of the local port %llu, "
        "unaccounted %lld\n",
        (unsigned long long)t.not_esp, (unsigned long long)t.local_out, (long long)unaccounted);
  double ratio = sent ? double(t.received) / double(sent) : 0;
  std::printf("LOST %lld of %llu (received/sent %.6f; %llu sent while a compile or publish ran)\n",
              (long long)lost, (unsigned long long)sent, ratio, (unsigned long long)sent_in_swaps);

  if (o.json) {
    nlohmann::json j;
    j["bench"] = "config_swap";
    j["workloads"] = mesh.a.workloads_size();
    j["services"] = mesh.a.services_size();
    j["policies"] = mesh.a.authorizations_size();
    j["namespaces"] = mesh.namespaces_used;
    j["hugepages"] = huge;
    j["cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
    j["loadavg_1m"] = loadavg[0];
    j["generate_ms"] = generate_ms;
    for (const Loaded& l : loads) {
      j["load_" + l.format + "_ms"] = l.ms;
      j["file_" + l.format + "_mib"] = l.mib;
    }
    j["validate_ms"] = median(validate_ms);
    j["compile_ms"] = median(compile_ms);
    j["compile_ms_all"] = compile_ms;
    j["republish_ms"] = median(republish_ms);
    j["label_compile_ms"] = median(label_compile_ms);
    j["label_republish_ms"] = median(label_republish_ms);
    j["authz_build_ms"] = authz_ms;
    j["snapshot_heap_mib"] = double(snapshot_heap) / (1 << 20);
    j["authz_memory_mib"] = double(engine_bytes) / (1 << 20);
    j["swaps"] = swaps_ok;
    j["swap_compile_ms"] = swap_compile;
    j["swap_publish_ms"] = swap_publish;
    j["swap_grace_ms"] = swap_grace;
    j["swap_compile_ms_max"] = maxv(swap_compile);
    j["swap_publish_ms_max"] = maxv(swap_publish);
    j["rate_pps"] = o.rate;
    j["flows"] = flows.size();
    j["flows_allowed"] = allowed;
    j["vip_flows"] = vip_flows;
    j["duration_s"] = run_s;
    j["sent"] = sent;
    j["sent_during_swaps"] = sent_in_swaps;
    j["received"] = t.received;
    j["ring_full"] = t.ring_full.load();
    j["drops"] = drops;
    j["harness_drops"] = harness_drops;
    j["not_esp"] = t.not_esp;
    j["unaccounted"] = unaccounted;
    j["lost"] = lost;
    j["ratio"] = ratio;
    std::printf("%s\n", j.dump().c_str());
  }
  std::fflush(stdout);

  dp::stop_port(uint16_t(h.local_port));
  dp::stop_port(uint16_t(h.fabric_port));
  worker.reset();
  pub.reset();
  for (rte_ring* r : {h.local_rx, h.local_tx, h.fabric_rx, h.fabric_tx, h.handoff}) {
    rte_mbuf* m = nullptr;
    while (rte_ring_dequeue(r, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
    rte_ring_free(r);
  }
  rte_mempool_free(h.pool);
  rte_eal_cleanup();
  bool ok = lost == 0 && unaccounted == 0 && t.not_esp == 0 && swaps_ok == o.swaps &&
            allowed == flows.size();
  return ok ? 0 : 1;
}
