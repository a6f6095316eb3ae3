#include "dataplane/metrics.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace vanish::dp {

namespace {

constexpr unsigned kKeptEpochs = 8;

// One WorkerCounters field as a Prometheus counter.
struct Field {
  const char* metric;  // without the vanish_ prefix and _total suffix
  const char* tel;     // telemetry dict key (the stats JSON name)
  uint64_t WorkerCounters::*member;
  const char* help;
};

constexpr Field kFields[] = {
    {"local_rx_packets", "local_rx", &WorkerCounters::local_rx,
     "packets received on the local port"},
    {"local_rx_bytes", "local_rx_bytes", &WorkerCounters::local_rx_bytes,
     "bytes received on the local port"},
    {"local_tx_packets", "local_tx", &WorkerCounters::local_tx, "packets sent on the local port"},
    {"local_tx_bytes", "local_tx_bytes", &WorkerCounters::local_tx_bytes,
     "bytes sent on the local port"},
    {"fabric_rx_packets", "fabric_rx", &WorkerCounters::fabric_rx,
     "packets received on the fabric port"},
    {"fabric_rx_bytes", "fabric_rx_bytes", &WorkerCounters::fabric_rx_bytes,
     "bytes received on the fabric port"},
    {"fabric_tx_packets", "fabric_tx", &WorkerCounters::fabric_tx,
     "packets sent on the fabric port"},
    {"fabric_tx_bytes", "fabric_tx_bytes", &WorkerCounters::fabric_tx_bytes,
     "bytes sent on the fabric port"},
    {"encrypted", "encrypted", &WorkerCounters::encrypted, "packets ESP-encrypted to a peer"},
    {"decrypted", "decrypted", &WorkerCounters::decrypted, "ESP packets decrypted and verified"},
    {"delivered", "delivered", &WorkerCounters::delivered,
     "decrypted packets delivered to a local workload"},
    {"hairpinned", "hairpinned", &WorkerCounters::hairpinned,
     "packets from a local workload to a local workload"},
    {"flows_created", "flows_created", &WorkerCounters::flows_created, "flow entries created"},
    {"flow_hits", "flow_hits", &WorkerCounters::flow_hits, "packets that hit a flow entry"},
    {"flow_misses", "flow_misses", &WorkerCounters::flow_misses, "packets without a flow entry"},
    {"flows_reclassified", "flows_reclassified", &WorkerCounters::flows_reclassified,
     "flow entries reclassified under a new config generation"},
    {"flows_aged", "flows_aged", &WorkerCounters::flows_aged, "idle flow entries removed"},
    {"authz_checks", "authz_checks", &WorkerCounters::authz_checks,
     "authorization policy evaluations (one per new flow at its destination)"},
    {"authz_denied_flows", "authz_denied_flows", &WorkerCounters::authz_denied_flows,
     "flows denied by an authorization policy"},
    {"reply_flows", "reply_flows", &WorkerCounters::reply_flows,
     "new flows recognised as replies to a local workload's connection"},
    {"service_flows", "service_flows", &WorkerCounters::service_flows,
     "flows to a service VIP (DNATed to an endpoint)"},
    {"egress_flows", "egress_flows", &WorkerCounters::egress_flows,
     "new flows to destinations outside the mesh"},
    {"egress_tx", "egress_tx", &WorkerCounters::egress_tx,
     "packets sent to the egress next hop (unencrypted, fabric port)"},
    {"egress_rx", "egress_rx", &WorkerCounters::egress_rx,
     "replies from outside the mesh delivered to local workloads"},
    {"host_inspected", "host_inspected", &WorkerCounters::host_inspected,
     "first payloads (and DNS queries) inspected for a host name"},
    {"host_allowed", "host_allowed", &WorkerCounters::host_allowed,
     "egress flows (DNS queries) allowed by their host name"},
    {"host_denied_flows", "host_denied_flows", &WorkerCounters::host_denied_flows,
     "egress flows (DNS queries) denied by their host name or for lack of one"},
    {"arp_replies", "arp_replies", &WorkerCounters::arp_replies, "ARP replies sent"},
    {"nd_adverts", "nd_adverts", &WorkerCounters::nd_adverts, "IPv6 neighbour adverts sent"},
    {"solicitations_sent", "solicitations_sent", &WorkerCounters::solicitations_sent,
     "ARP requests / neighbour solicitations sent"},
    {"neighbours_learned", "neighbours_learned", &WorkerCounters::neighbours_learned,
     "neighbour table entries learned or changed"},
    {"icmp_errors_sent", "icmp_errors_sent", &WorkerCounters::icmp_errors_sent,
     "ICMP errors sent (TTL, MTU)"},
    {"fragments_made", "fragments_made", &WorkerCounters::fragments_made,
     "IPv4 fragments made before encryption"},
    {"handoff_out", "handoff_out", &WorkerCounters::handoff_out,
     "inbound packets handed to the worker owning their SA"},
    {"handoff_in", "handoff_in", &WorkerCounters::handoff_in,
     "inbound packets received from another worker"},
    {"busy_polls", "busy_polls", &WorkerCounters::busy_polls, "polls that received packets"},
    {"idle_polls", "idle_polls", &WorkerCounters::idle_polls, "polls that received nothing"},
};

uint64_t load(const uint64_t& v) {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

// Prometheus label value escaping: backslash, double quote, newline.
std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  }
  return o;
}

void header(std::string& o, const char* name, const char* type, const std::string& help) {
  o += "# HELP ";
  o += name;
  o += ' ';
  o += help;  // no newlines or backslashes in our help texts
  o += "\n# TYPE ";
  o += name;
  o += ' ';
  o += type;
  o += '\n';
}

void sample(std::string& o, const std::string& name, const std::string& labels, uint64_t v) {
  o += name;
  if (!labels.empty()) {
    o += '{';
    o += labels;
    o += '}';
  }
  o += ' ';
  o += std::to_string(v);
  o += '\n';
}

void sample_d(std::string& o, const std::string& name, const std::string& labels, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  o += name;
  if (!labels.empty()) {
    o += '{';
    o += labels;
    o += '}';
  }
  o += ' ';
  o += buf;
  o += '\n';
}

std::string lbl(const char* k, const std::string& v) {
  return std::string(k) + "=\"" + esc(v) + "\"";
}

}  // namespace

Metrics::Metrics(MetricsSources src) : src_(std::move(src)) {
  conn_labels_.resize(src_.workers.size());
}

void Metrics::set_workers(std::vector<const Worker*> ws) {
  src_.workers = std::move(ws);
  conn_labels_.assign(src_.workers.size(), {});
}

Metrics::Names Metrics::names_of(const Snapshot& s) {
  Names n;
  n.workloads.resize(s.workloads.size());
  for (size_t i = 0; i < s.workloads.size(); i++) {
    auto& w = n.workloads[i];
    if (i < s.workload_meta.size()) {
      w.name = s.workload_meta[i].name;
      w.ns = s.workload_meta[i].ns;
    }
    uint32_t id = s.workloads[i].identity_index;
    if (id < s.identities.size()) w.principal = "spiffe://" + s.identities[id].principal;
  }
  n.services.resize(s.service_meta.size());
  for (size_t i = 0; i < s.service_meta.size(); i++)
    n.services[i] = {s.service_meta[i].hostname, s.service_meta[i].name, s.service_meta[i].ns};
  return n;
}

void Metrics::label(Snapshot& s) {
  generation_.store(s.generation, std::memory_order_relaxed);
  // A republish of the running config (new SAs, Snapshot::decision_generation unchanged) names
  // the same workloads and services: no need to build and compare every name again.
  if (!first_ && s.decision_generation == labelled_decisions_) {
    s.label_epoch = epoch_;
    return;
  }
  labelled_decisions_ = s.decision_generation;
  if (first_) {
    first_ = false;
    epochs_[epoch_] = names_of(s);
    s.label_epoch = epoch_;
    return;
  }
  Names n = names_of(s);
  const Names& cur = epochs_[epoch_];
  bool same = true;
  for (size_t i = 0; same && i < std::min(cur.workloads.size(), n.workloads.size()); i++) {
    const auto &a = cur.workloads[i], &b = n.workloads[i];
    same = a.name == b.name && a.ns == b.ns && a.principal == b.principal;
  }
  for (size_t i = 0; same && i < std::min(cur.services.size(), n.services.size()); i++)
    same = cur.services[i].hostname == n.services[i].hostname &&
           cur.services[i].name == n.services[i].name && cur.services[i].ns == n.services[i].ns;
  if (!same) {
    // Slots made under the old names keep them: resolve them before the names may go.
    resolve_all();
    epoch_++;
    while (epochs_.size() >= kKeptEpochs) epochs_.erase(epochs_.begin());
  }
  epochs_[epoch_] = std::move(n);  // same epoch: a superset of the old names
  s.label_epoch = epoch_;
}

const std::string& Metrics::conn_labels(unsigned w, uint32_t slot) {
  auto& cache = conn_labels_[w];
  if (cache.size() <= slot) cache.resize(slot + 1);
  std::string& l = cache[slot];
  if (!l.empty()) return l;
  const ConnKey& k = src_.workers[w]->conn_stats().key(slot);
  auto it = epochs_.find(k.epoch);
  if (it == epochs_.end()) {
    l = "source_workload=\"unknown\",source_workload_namespace=\"unknown\","
        "source_principal=\"unknown\",destination_workload=\"unknown\","
        "destination_workload_namespace=\"unknown\",destination_principal=\"unknown\","
        "destination_service=\"unknown\",destination_service_name=\"unknown\","
        "destination_service_namespace=\"unknown\",connection_security_policy=\"unknown\"";
    return l;
  }
  const Names& n = it->second;
  auto wl = [&](uint32_t i) -> Names::Workload {
    if (i < n.workloads.size()) {
      Names::Workload r = n.workloads[i];
      if (r.principal.empty()) r.principal = "unknown";
      return r;
    }
    return {"unknown", "unknown", "unknown"};
  };
  Names::Workload c = wl(k.client), s = wl(k.server);
  Names::Service svc{"unknown", "unknown", "unknown"};
  if (k.service < n.services.size()) svc = n.services[k.service];
  l = lbl("source_workload", c.name) + ',' + lbl("source_workload_namespace", c.ns) + ',' +
      lbl("source_principal", c.principal) + ',' + lbl("destination_workload", s.name) + ',' +
      lbl("destination_workload_namespace", s.ns) + ',' +
      lbl("destination_principal", s.principal) + ',' + lbl("destination_service", svc.hostname) +
      ',' + lbl("destination_service_name", svc.name) + ',' +
      lbl("destination_service_namespace", svc.ns) + ',' +
      // Between nodes the connection crosses the fabric inside ESP keyed by the appliances'
      // mTLS; a hairpin connection never leaves the appliance.
      lbl("connection_security_policy", k.kind == ConnKind::kBoth ? "none" : "mutual_tls");
  return l;
}

void Metrics::resolve_all() {
  for (unsigned w = 0; w < src_.workers.size(); w++) {
    uint32_t used = src_.workers[w]->conn_stats().used();
    for (uint32_t s = 1; s < used; s++) conn_labels(w, s);
  }
}

std::string Metrics::render() {
  std::string o;
  o.reserve(64 * 1024);
  const auto& ws = src_.workers;
  std::vector<WorkerCounters> ctr(ws.size());
  for (size_t w = 0; w < ws.size(); w++) {
    // Plain 64-bit loads of a struct another thread writes (counters.hpp contract).
    const uint64_t* p = reinterpret_cast<const uint64_t*>(&ws[w]->counters());
    uint64_t* d = reinterpret_cast<uint64_t*>(&ctr[w]);
    for (size_t i = 0; i < sizeof(WorkerCounters) / 8; i++) d[i] = load(p[i]);
  }
  const Snapshot* snap = src_.pub ? src_.pub->current() : nullptr;

  header(o, "vanish_info", "gauge", "the appliance: node name and version");
  sample(o, "vanish_info", lbl("node", src_.node) + ',' + lbl("version", "0.1.0"), 1);
  header(o, "vanish_uptime_seconds", "gauge", "seconds since vanishd started");
  sample_d(o, "vanish_uptime_seconds", "",
           double(rte_rdtsc() - src_.start_tsc) / double(rte_get_tsc_hz()));
  header(o, "vanish_workers", "gauge", "worker lcores");
  sample(o, "vanish_workers", "", ws.size());
  header(o, "vanish_config_generation", "gauge", "config generation being served");
  sample(o, "vanish_config_generation", "", snap ? snap->generation : 0);
  header(o, "vanish_config_reloads_total", "counter",
         "live config changes (file watch or vanishctl config apply) by result");
  sample(o, "vanish_config_reloads_total", "result=\"applied\"", reloads_ok_);
  sample(o, "vanish_config_reloads_total", "result=\"rejected\"", reloads_rejected_);
  if (snap) {
    header(o, "vanish_config_workloads", "gauge", "workloads in the config being served");
    sample(o, "vanish_config_workloads", "", snap->workloads.size());
    header(o, "vanish_config_services", "gauge", "services in the config being served");
    sample(o, "vanish_config_services", "", snap->service_meta.size());
  }

  // Ports.
  struct PortRow {
    const char* name;
    uint16_t id;
    rte_eth_stats st;
    bool ok;
  } ports[2] = {{"local", src_.local_port, {}, false}, {"fabric", src_.fabric_port, {}, false}};
  for (auto& p : ports) p.ok = rte_eth_stats_get(p.id, &p.st) == 0;
  struct PortField {
    const char* metric;
    uint64_t rte_eth_stats::*m;
    const char* help;
  };
  constexpr PortField pf[] = {
      {"vanish_port_rx_packets_total", &rte_eth_stats::ipackets, "packets received (NIC)"},
      {"vanish_port_tx_packets_total", &rte_eth_stats::opackets, "packets sent (NIC)"},
      {"vanish_port_rx_bytes_total", &rte_eth_stats::ibytes, "bytes received (NIC)"},
      {"vanish_port_tx_bytes_total", &rte_eth_stats::obytes, "bytes sent (NIC)"},
      {"vanish_port_rx_missed_total", &rte_eth_stats::imissed,
       "packets the NIC dropped because the RX queues were full (imissed)"},
      {"vanish_port_rx_errors_total", &rte_eth_stats::ierrors, "erroneous received packets"},
      {"vanish_port_tx_errors_total", &rte_eth_stats::oerrors, "failed transmissions"},
      {"vanish_port_rx_nombuf_total", &rte_eth_stats::rx_nombuf, "RX mbuf allocation failures"},
  };
  for (const auto& f : pf) {
    header(o, f.metric, "counter", std::string(f.help) + ", per port");
    for (auto& p : ports)
      if (p.ok)
        sample(o, f.metric, lbl("port", p.name) + ",port_id=\"" + std::to_string(p.id) + '"',
               p.st.*f.m);
  }
  header(o, "vanish_port_link_up", "gauge", "link status (1 up)");
  for (auto& p : ports) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(p.id, &link) == 0)
      sample(o, "vanish_port_link_up", lbl("port", p.name), link.link_status ? 1 : 0);
  }

  // Workers.
  for (const auto& f : kFields) {
    std::string name = std::string("vanish_") + f.metric + "_total";
    header(o, name.c_str(), "counter", std::string(f.help) + ", per worker");
    for (size_t w = 0; w < ws.size(); w++)
      sample(o, name, "worker=\"" + std::to_string(w) + '"', ctr[w].*f.member);
  }
  header(o, "vanish_flows_active", "gauge", "flow table entries in use, per worker");
  for (size_t w = 0; w < ws.size(); w++)
    sample(o, "vanish_flows_active", "worker=\"" + std::to_string(w) + '"', ws[w]->flows().size());

  // Drops: every reason, so rate() works from the first packet on.
  header(o, "vanish_drops_total", "counter",
         "packets dropped or consumed, per reason and worker (see vanish_drop_reason_info)");
  for (unsigned r = 0; r < kDropReasonCount; r++)
    for (size_t w = 0; w < ws.size(); w++)
      sample(
          o, "vanish_drops_total",
          lbl("reason", drop_reason_name(DropReason(r))) + ",worker=\"" + std::to_string(w) + '"',
          ctr[w].drops[r]);
  header(o, "vanish_drop_reason_info", "gauge", "what each drop reason means");
  for (unsigned r = 0; r < kDropReasonCount; r++)
    sample(o, "vanish_drop_reason_info",
           lbl("reason", drop_reason_name(DropReason(r))) + ',' +
               lbl("description", drop_reason_description(DropReason(r))),
           1);

  // Peers.
  if (snap) {
    header(o, "vanish_peer_sa_reachable", "gauge",
           "1 when an outbound SA exists towards the peer node for every worker");
    for (size_t n = 0; n < snap->nodes.size(); n++) {
      if (n == snap->self.value) continue;
      bool up = n < snap->peer_tx.size() && snap->peer_tx[n].reachable;
      sample(o, "vanish_peer_sa_reachable", lbl("peer", snap->nodes[n].name), up ? 1 : 0);
    }
  }

  // istio_tcp_*: sum the workers' slots by label set.
  struct Agg {
    uint64_t opened = 0, closed = 0, received = 0, sent = 0;
  };
  std::map<std::string, Agg> agg;  // ordered: stable output
  header(o, "vanish_conn_metrics_overflow_total", "counter",
         "connections not counted in istio_tcp_* because the worker's aggregate table was full");
  for (unsigned w = 0; w < ws.size(); w++) {
    const ConnStats& cs = ws[w]->conn_stats();
    sample(o, "vanish_conn_metrics_overflow_total", "worker=\"" + std::to_string(w) + '"',
           cs.overflow());
    uint32_t used = cs.used();
    for (uint32_t s = 1; s < used; s++) {
      const std::string& l = conn_labels(w, s);
      ConnKind kind = cs.key(s).kind;
      for (const char* rep : {"source", "destination"}) {
        if ((kind == ConnKind::kSource && rep[0] == 'd') ||
            (kind == ConnKind::kDestination && rep[0] == 's'))
          continue;
        Agg& a = agg[std::string("reporter=\"") + rep + "\"," + l];
        a.opened += cs.opened_count(s);
        a.closed += cs.closed_count(s);
        a.received += cs.request_bytes(s);
        a.sent += cs.response_bytes(s);
      }
    }
  }
  header(o, "istio_tcp_connections_opened_total", "counter",
         "TCP connections opened (reporter: source = the client's node, destination = the "
         "server's node)");
  for (auto& [l, a] : agg) sample(o, "istio_tcp_connections_opened_total", l, a.opened);
  header(o, "istio_tcp_connections_closed_total", "counter",
         "TCP connections closed (their flow entry expired)");
  for (auto& [l, a] : agg) sample(o, "istio_tcp_connections_closed_total", l, a.closed);
  header(o, "istio_tcp_received_bytes_total", "counter",
         "bytes received during request (client to server, IP length)");
  for (auto& [l, a] : agg) sample(o, "istio_tcp_received_bytes_total", l, a.received);
  header(o, "istio_tcp_sent_bytes_total", "counter",
         "bytes sent during response (server to client, IP length)");
  for (auto& [l, a] : agg) sample(o, "istio_tcp_sent_bytes_total", l, a.sent);
  if (extra) extra(o);
  return o;
}

// ---- DPDK telemetry ------------------------------------------------------------------------

struct MetricsTelemetry {
  static std::mutex mu;
  static Metrics* m;

  // params: "" (all workers) or a worker id.
  static bool workers(const char* params, std::vector<const Worker*>* out) {
    const auto& ws = m->src_.workers;
    if (!params || !*params) {
      *out = ws;
      return true;
    }
    char* end = nullptr;
    unsigned long w = std::strtoul(params, &end, 10);
    if (*end || w >= ws.size()) return false;
    out->push_back(ws[w]);
    return true;
  }
  static WorkerCounters sum(const std::vector<const Worker*>& ws) {
    WorkerCounters t;
    for (const Worker* w : ws) {
      WorkerCounters c;
      const uint64_t* p = reinterpret_cast<const uint64_t*>(&w->counters());
      uint64_t* d = reinterpret_cast<uint64_t*>(&c);
      for (size_t i = 0; i < sizeof(WorkerCounters) / 8; i++) d[i] = load(p[i]);
      t.add(c);
    }
    return t;
  }

  static int stats(const char*, const char* params, rte_tel_data* d) {
    std::lock_guard<std::mutex> g(mu);
    std::vector<const Worker*> ws;
    if (!m || !workers(params, &ws)) return -EINVAL;
    WorkerCounters t = sum(ws);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "node", m->src_.node.c_str());
    rte_tel_data_add_dict_u64(d, "generation", m->generation_.load(std::memory_order_relaxed));
    rte_tel_data_add_dict_u64(d, "workers", m->src_.workers.size());
    for (const auto& f : kFields) rte_tel_data_add_dict_u64(d, f.tel, t.*f.member);
    rte_tel_data_add_dict_u64(d, "drops_total", t.total_drops());
    for (auto [name, port] : {std::pair{"port_local", m->src_.local_port},
                              std::pair{"port_fabric", m->src_.fabric_port}}) {
      rte_eth_stats st{};
      if (rte_eth_stats_get(port, &st) != 0) continue;
      rte_tel_data* p = rte_tel_data_alloc();
      if (!p) continue;
      rte_tel_data_start_dict(p);
      rte_tel_data_add_dict_u64(p, "port_id", port);
      rte_tel_data_add_dict_u64(p, "ipackets", st.ipackets);
      rte_tel_data_add_dict_u64(p, "opackets", st.opackets);
      rte_tel_data_add_dict_u64(p, "ibytes", st.ibytes);
      rte_tel_data_add_dict_u64(p, "obytes", st.obytes);
      rte_tel_data_add_dict_u64(p, "imissed", st.imissed);
      rte_tel_data_add_dict_u64(p, "ierrors", st.ierrors);
      rte_tel_data_add_dict_u64(p, "oerrors", st.oerrors);
      rte_tel_data_add_dict_u64(p, "rx_nombuf", st.rx_nombuf);
      rte_tel_data_add_dict_container(d, name, p, 0);
    }
    return 0;
  }
  static int drops(const char*, const char* params, rte_tel_data* d) {
    std::lock_guard<std::mutex> g(mu);
    std::vector<const Worker*> ws;
    if (!m || !workers(params, &ws)) return -EINVAL;
    WorkerCounters t = sum(ws);
    rte_tel_data_start_dict(d);
    for (unsigned r = 0; r < kDropReasonCount; r++)
      rte_tel_data_add_dict_u64(d, drop_reason_name(DropReason(r)), t.drops[r]);
    return 0;
  }
};
std::mutex MetricsTelemetry::mu;
Metrics* MetricsTelemetry::m = nullptr;

bool Metrics::register_telemetry() {
  static bool registered = false;  // DPDK 22.11 cannot unregister a command
  {
    std::lock_guard<std::mutex> g(MetricsTelemetry::mu);
    MetricsTelemetry::m = this;
  }
  if (registered) return true;
  registered = true;
  bool ok = rte_telemetry_register_cmd(
                "/vanish/stats", MetricsTelemetry::stats,
                "vanish counters (all workers, or the worker given as parameter) and ports") == 0;
  ok = rte_telemetry_register_cmd("/vanish/drops", MetricsTelemetry::drops,
                                  "vanish drops per reason (all workers, or the worker given "
                                  "as parameter)") == 0 &&
       ok;
  return ok;
}

Metrics::~Metrics() {
  std::lock_guard<std::mutex> g(MetricsTelemetry::mu);
  if (MetricsTelemetry::m == this) MetricsTelemetry::m = nullptr;
}

}  // namespace vanish::dp
