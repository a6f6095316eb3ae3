#include "ctl/views_render.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>

namespace vanish::ctl::views {

namespace {

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08" PRIx32, v);
  return b;
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string vip_str(const v1::VipRow& v) {
  bool v6 = v.address().find(':') != std::string::npos;
  return (v6 ? "[" + v.address() + "]" : v.address()) + ":" + std::to_string(v.port());
}

template <typename Rows>
Json list_json(const char* key, const Rows& r, Json rows) {
  Json j;
  j["total"] = r.total();
  j["shown"] = r.shown();
  j[key] = std::move(rows);
  return j;
}

template <typename Rows>
std::string list_text(const Row& header, const std::vector<Row>& rows, const Rows& r) {
  return table(header, rows) + shown_note(r.total(), r.shown());
}

std::string u64(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

std::string table(const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> w(header.size(), 0);
  auto cell = [](const Row& r, size_t i) -> std::string {
    return i < r.size() && !r[i].empty() ? r[i] : "-";
  };
  for (size_t i = 0; i < header.size(); i++) w[i] = header[i].size();
  for (const Row& r : rows)
    for (size_t i = 0; i < header.size(); i++) w[i] = std::max(w[i], cell(r, i).size());
  std::string out;
  auto line = [&](const Row& r, bool hdr) {
    std::string l;
    for (size_t i = 0; i < header.size(); i++) {
      std::string c = hdr ? header[i] : cell(r, i);
      l += c;
      if (i + 1 < header.size()) l += std::string(w[i] - c.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header, true);
  for (const Row& r : rows) line(r, false);
  return out;
}

std::string shown_note(uint32_t total, uint32_t shown) {
  if (shown >= total) return "";
  return "(shown " + std::to_string(shown) + " of " + std::to_string(total) +
         "; --limit N / --match TEXT)\n";
}

std::string mac_or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::string fmt_fixed(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// ---- status ----

void dataplane_status_json(const v1::DataplaneStatus& d, Json* j) {
  Json ports = Json::array();
  for (const auto& p : d.ports()) {
    Json x;
    x["role"] = p.role();
    x["port_id"] = p.port_id();
    x["name"] = p.name();
    x["link_up"] = p.link_up();
    x["speed_mbps"] = p.speed_mbps();
    x["rx_packets"] = p.rx_packets();
    x["tx_packets"] = p.tx_packets();
    x["rx_bytes"] = p.rx_bytes();
    x["tx_bytes"] = p.tx_bytes();
    x["rx_missed"] = p.rx_missed();
    x["rx_errors"] = p.rx_errors();
    x["tx_errors"] = p.tx_errors();
    x["rx_nombuf"] = p.rx_nombuf();
    ports.push_back(std::move(x));
  }
  Json load = Json::array();
  for (const auto& w : d.workers()) {
    Json x;
    x["id"] = w.id();
    x["mpps"] = w.mpps();
    x["busy_pct"] = w.busy_pct();
    x["rx_packets"] = w.rx_packets();
    load.push_back(std::move(x));
  }
  (*j)["ports"] = std::move(ports);
  (*j)["worker_load"] = std::move(load);
  (*j)["load_interval_s"] = d.interval_s();
}

std::string dataplane_status_text(const v1::DataplaneStatus& d) {
  std::vector<Row> rows;
  for (const auto& p : d.ports())
    rows.push_back({p.role(), std::to_string(p.port_id()), p.name(), p.link_up() ? "up" : "down",
                    p.speed_mbps() ? std::to_string(p.speed_mbps()) : "", u64(p.rx_packets()),
                    u64(p.tx_packets()), u64(p.rx_missed()), u64(p.rx_errors()),
                    u64(p.tx_errors())});
  std::string out = table({"PORT", "ID", "DEVICE", "LINK", "MBPS", "RX PKTS", "TX PKTS",
                           "RX MISSED", "RX ERRORS", "TX ERRORS"},
                          rows);
  rows.clear();
  for (const auto& w : d.workers())
    rows.push_back({std::to_string(w.id()), fmt_fixed(w.mpps(), 3), fmt_fixed(w.busy_pct(), 1),
                    u64(w.rx_packets())});
  out += "\n" + table({"WORKER", "MPPS", "BUSY %", "RX PKTS"}, rows);
  out += "(load over the last " + fmt_fixed(d.interval_s(), 1) + " s)\n";
  return out;
}

// ---- workloads ----

Json workloads_json(const v1::WorkloadRows& r) {
  Json rows = Json::array();
  for (const auto& w : r.rows()) {
    Json x;
    x["name"] = w.name();
    x["namespace"] = w.namespace_();
    x["node"] = w.node();
    x["addresses"] = Json(std::vector<std::string>(w.addresses().begin(), w.addresses().end()));
    x["principal"] = w.principal();
    x["identity_id"] = hex32(w.identity_id());
    x["local"] = w.local();
    x["mac"] = w.mac();
    x["uid"] = w.uid();
    rows.push_back(std::move(x));
  }
  return list_json("workloads", r, std::move(rows));
}

std::string workloads_text(const v1::WorkloadRows& r) {
  std::vector<Row> rows;
  for (const auto& w : r.rows())
    rows.push_back({w.namespace_() + "/" + w.name(), w.node(), w.local() ? "local" : "remote",
                    join(w.addresses(), ","), w.principal(), hex32(w.identity_id()), w.mac()});
  return list_text({"WORKLOAD", "NODE", "WHERE", "ADDRESSES", "IDENTITY", "WIRE ID", "MAC"}, rows,
                   r);
}

// ---- services ----

Json services_json(const v1::ServiceRows& r) {
  Json rows = Json::array();
  for (const auto& s : r.rows()) {
    Json x;
    x["name"] = s.name();
    x["namespace"] = s.namespace_();
    x["hostname"] = s.hostname();
    x["waypoint"] = s.waypoint();
    Json vips = Json::array();
    for (const auto& v : s.vips()) {
      Json vj;
      vj["address"] = v.address();
      vj["port"] = v.port();
      vj["endpoints_total"] = v.endpoints_total();
      Json eps = Json::array();
      for (const auto& e : v.endpoints()) {
        Json ej;
        ej["workload"] = e.workload();
        ej["address"] = e.address();
        ej["target_port"] = e.target_port();
        ej["weight"] = e.weight();
        ej["node"] = e.node();
        eps.push_back(std::move(ej));
      }
      vj["endpoints"] = std::move(eps);
      vips.push_back(std::move(vj));
    }
    x["vips"] = std::move(vips);
    rows.push_back(std::move(x));
  }
  return list_json("services", r, std::move(rows));
}

// One line per VIP:port; the service's columns on its first line only.
std::string services_text(const v1::ServiceRows& r) {
  std::vector<Row> rows;
  for (const auto& s : r.rows()) {
    std::string svc = s.namespace_() + "/" + s.name();
    if (s.vips().empty()) rows.push_back({svc, s.hostname(), "", "", s.waypoint()});
    bool first = true;
    for (const auto& v : s.vips()) {
      std::string eps;
      for (const auto& e : v.endpoints()) {
        bool v6 = e.address().find(':') != std::string::npos;
        eps += (eps.empty() ? "" : " ") + e.workload() + "=" +
               (v6 ? "[" + e.address() + "]" : e.address()) + ":" +
               std::to_string(e.target_port()) + "/w" + std::to_string(e.weight());
      }
      if (v.endpoints_total() > uint32_t(v.endpoints_size()))
        eps +=
            " (+" + std::to_string(v.endpoints_total() - uint32_t(v.endpoints_size())) + " more)";
      if (v.endpoints_total() == 0) eps = "(no healthy endpoint)";
      rows.push_back({first ? svc : " ", first ? s.hostname() : " ", vip_str(v), eps,
                      first ? s.waypoint() : " "});
      first = false;
    }
  }
  std::string out = table(
      {"SERVICE", "HOSTNAME", "VIP", "ENDPOINTS (workload=addr:port/weight)", "WAYPOINT"}, rows);
  return out + shown_note(r.total(), r.shown());
}

// ---- policies ----

Json policies_json(const v1::PolicyRows& r) {
  Json rows = Json::array();
  for (const auto& p : r.rows()) {
    Json x;
    x["namespace"] = p.namespace_();
    x["name"] = p.name();
    x["scope"] = p.scope();
    x["action"] = p.action();
    x["dry_run"] = p.dry_run();
    x["rules"] = p.rules();
    x["workloads"] = p.workloads();
    rows.push_back(std::move(x));
  }
  return list_json("policies", r, std::move(rows));
}

std::string policies_text(const v1::PolicyRows& r) {
  std::vector<Row> rows;
  for (const auto& p : r.rows())
    rows.push_back({p.namespace_() + "/" + p.name(), p.scope(), p.action(),
                    p.dry_run() ? "dry-run" : "enforced", std::to_string(p.rules()),
                    std::to_string(p.workloads())});
  return list_text({"POLICY", "SCOPE", "ACTION", "MODE", "RULES", "WORKLOADS"}, rows, r);
}

// ---- SAs ----

Json sas_json(const v1::SaRows& r) {
  Json rows = Json::array();
  for (const auto& s : r.rows()) {
    Json x;
    x["spi"] = hex32(s.spi());
    x["direction"] = s.direction();
    x["peer"] = s.peer();
    x["worker"] = s.worker();
    x["cipher"] = s.cipher();
    x["esn"] = s.esn();
    x["seq"] = s.seq();
    x["packets"] = s.packets();
    x["bytes"] = s.bytes();
    if (s.direction() == "in") {
      x["replay_drops"] = s.replay_drops();
      x["replay_window"] = s.replay_window();
      x["auth_failures"] = s.auth_failures();
    } else {
      x["udp_sport"] = s.udp_sport();
    }
    rows.push_back(std::move(x));
  }
  return list_json("sas", r, std::move(rows));
}

std::string sas_text(const v1::SaRows& r) {
  std::vector<Row> rows;
  for (const auto& s : r.rows()) {
    bool in = s.direction() == "in";
    rows.push_back({hex32(s.spi()), s.direction(), s.peer(), std::to_string(s.worker()), s.cipher(),
                    s.esn() ? "yes" : "no", u64(s.seq()), u64(s.packets()),
                    !in                 ? ""
                    : s.replay_window() ? u64(s.replay_drops())
                                        : "off (no anti-replay)",
                    in ? u64(s.auth_failures()) : ""});
  }
  return list_text({"SPI", "DIR", "PEER", "WORKER", "CIPHER", "ESN", "SEQ", "PACKETS",
                    "REPLAY DROPS", "BAD ICV"},
                   rows, r);
}

// ---- peers ----

Json peers_json(const v1::PeerRows& r) {
  Json rows = Json::array();
  for (const auto& p : r.rows()) {
    Json x;
    x["name"] = p.name();
    x["fabric_ipv4"] = p.fabric_ipv4();
    x["fabric_ipv6"] = p.fabric_ipv6();
    x["state"] = p.state();
    x["keying"] = p.keying();
    x["sas_out"] = p.sas_out();
    x["sas_in"] = p.sas_in();
    x["last_handshake"] = p.last_handshake().empty() ? Json(nullptr) : Json(p.last_handshake());
    x["rekeys"] = p.has_rekeys() ? Json(p.rekeys()) : Json(nullptr);
    x["spiffe_id"] = p.spiffe_id();
    x["management_address"] = p.management_address();
    if (p.keying() == "mtls") {
      x["connection"] = p.connection();
      x["handshake_ms"] = p.handshake_ms();
      x["handshakes"] = p.handshakes();
      x["generations"] = p.generations();
      x["last_error"] = p.last_error();
      x["dialer"] = p.dialer();
      x["peer_restarts"] = p.peer_restarts();
    }
    rows.push_back(std::move(x));
  }
  return list_json("peers", r, std::move(rows));
}

std::string peers_text(const v1::PeerRows& r) {
  std::vector<Row> rows;
  bool mtls = false;
  for (const auto& p : r.rows()) mtls = mtls || p.keying() == "mtls";
  for (const auto& p : r.rows()) {
    char ms[32] = "";
    if (p.keying() == "mtls" && p.handshakes())
      std::snprintf(ms, sizeof ms, "%.2f", p.handshake_ms());
    Row row{p.name(),
            p.fabric_ipv4(),
            p.fabric_ipv6(),
            p.state(),
            p.keying(),
            std::to_string(p.sas_out()),
            std::to_string(p.sas_in()),
            p.last_handshake(),
            p.has_rekeys() ? u64(p.rekeys()) : ""};
    if (mtls) {
      row.insert(row.begin() + 5, p.connection());
      row.push_back(ms);
      row.push_back(p.last_error());
    }
    rows.push_back(std::move(row));
  }
  if (mtls)
    return list_text(
        {"PEER", "FABRIC IPV4", "FABRIC IPV6", "STATE", "KEYING", "CONNECTION", "SAS OUT", "SAS IN",
         "LAST HANDSHAKE", "REKEYS", "HANDSHAKE MS", "LAST ERROR"},
        rows, r);
  return list_text({"PEER", "FABRIC IPV4", "FABRIC IPV6", "STATE", "KEYING", "SAS OUT", "SAS IN",
                    "LAST HANDSHAKE", "REKEYS"},
                   rows, r);
}

// ---- stats ----

StatsTotals stats_totals(const v1::StatsReport& r) {
  StatsTotals t;
  std::map<std::string, size_t> ci, di;
  for (const auto& w : r.workers()) {
    for (const auto& c : w.counters()) {
      auto [it, added] = ci.emplace(c.name(), t.counters.size());
      if (added) t.counters.emplace_back(c.name(), 0);
      t.counters[it->second].second += c.value();
    }
    for (const auto& c : w.drops()) {
      auto [it, added] = di.emplace(c.name(), t.drops.size());
      if (added) {
        t.drops.emplace_back(c.name(), 0);
        t.descriptions.emplace_back(c.name(), c.description());
      }
      t.drops[it->second].second += c.value();
    }
  }
  return t;
}

namespace {

uint64_t find(const std::vector<std::pair<std::string, uint64_t>>& v, const std::string& k) {
  for (const auto& [name, val] : v)
    if (name == k) return val;
  return 0;
}

double rate(uint64_t cur, uint64_t prev, double dt) {
  return dt > 0 && cur >= prev ? double(cur - prev) / dt : 0.0;
}

double elapsed(const v1::StatsReport& cur, const v1::StatsReport* prev) {
  return prev && cur.time_ns() > prev->time_ns() ? double(cur.time_ns() - prev->time_ns()) / 1e9
                                                 : 0.0;
}

}  // namespace

Json stats_json(const v1::StatsReport& cur, const v1::StatsReport* prev) {
  auto one = [](const StatsTotals& t) {
    Json j;
    for (const auto& [n, v] : t.counters) j[n] = v;
    Json d = Json::object();
    uint64_t sum = 0;
    for (const auto& [n, v] : t.drops) {
      d[n] = v;
      sum += v;
    }
    j["drops"] = std::move(d);
    j["drops_total"] = sum;
    return j;
  };
  Json j;
  j["node"] = cur.node();
  j["time_s"] = double(cur.time_ns()) / 1e9;
  StatsTotals tot = stats_totals(cur);
  j["total"] = one(tot);
  Json ws = Json::array();
  for (const auto& w : cur.workers()) {
    v1::StatsReport single;
    *single.add_workers() = w;
    Json x = one(stats_totals(single));
    x["id"] = w.id();
    ws.push_back(std::move(x));
  }
  j["workers"] = std::move(ws);
  if (prev) {
    double dt = elapsed(cur, prev);
    StatsTotals pt = stats_totals(*prev);
    Json rates, drops = Json::object();
    for (const auto& [n, v] : tot.counters) rates[n] = rate(v, find(pt.counters, n), dt);
    for (const auto& [n, v] : tot.drops) drops[n] = rate(v, find(pt.drops, n), dt);
    rates["drops"] = std::move(drops);
    j["interval_s"] = dt;
    j["rates"] = std::move(rates);
  }
  return j;
}

std::string stats_text(const v1::StatsReport& cur, const v1::StatsReport* prev) {
  StatsTotals tot = stats_totals(cur);
  std::vector<StatsTotals> per;
  for (const auto& w : cur.workers()) {
    v1::StatsReport single;
    *single.add_workers() = w;
    per.push_back(stats_totals(single));
  }
  double dt = elapsed(cur, prev);
  StatsTotals pt;
  if (prev) pt = stats_totals(*prev);
  Row header = {"COUNTER", "TOTAL"};
  if (prev) header.push_back("PER SEC");
  for (const auto& w : cur.workers()) header.push_back("W" + std::to_string(w.id()));
  auto row = [&](const std::string& name, uint64_t v, uint64_t pv, bool drop) {
    Row r = {name, u64(v)};
    if (prev) r.push_back(fmt_fixed(rate(v, pv, dt), 1));
    for (const auto& p : per) r.push_back(u64(find(drop ? p.drops : p.counters, name)));
    return r;
  };
  std::vector<Row> rows;
  for (const auto& [n, v] : tot.counters)
    if (v) rows.push_back(row(n, v, find(pt.counters, n), false));
  std::string out = "node " + cur.node() + ", " + std::to_string(cur.workers_size()) +
                    " worker(s), up " + fmt_fixed(double(cur.time_ns()) / 1e9, 1) + " s" +
                    (prev ? ", rates over " + fmt_fixed(dt, 1) + " s" : "") + "\n";
  out += table(header, rows);
  if (tot.drops.empty()) return out + "drops: none\n";
  rows.clear();
  header[0] = "DROP REASON";
  header.push_back("DESCRIPTION");
  for (size_t i = 0; i < tot.drops.size(); i++) {
    Row r = row(tot.drops[i].first, tot.drops[i].second, find(pt.drops, tot.drops[i].first), true);
    r.push_back(tot.descriptions[i].second);
    rows.push_back(std::move(r));
  }
  return out + "\n" + table(header, rows);
}

}  // namespace vanish::ctl::views
