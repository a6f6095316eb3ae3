#include "dataplane/stats_report.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace vanish::dp {

std::vector<std::pair<const char*, uint64_t>> counter_fields(const WorkerCounters& c) {
  return {{"local_rx", c.local_rx},
          {"local_rx_bytes", c.local_rx_bytes},
          {"local_tx", c.local_tx},
          {"local_tx_bytes", c.local_tx_bytes},
          {"fabric_rx", c.fabric_rx},
          {"fabric_rx_bytes", c.fabric_rx_bytes},
          {"fabric_tx", c.fabric_tx},
          {"fabric_tx_bytes", c.fabric_tx_bytes},
          {"encrypted", c.encrypted},
          {"decrypted", c.decrypted},
          {"delivered", c.delivered},
          {"hairpinned", c.hairpinned},
          {"flows_created", c.flows_created},
          {"flow_hits", c.flow_hits},
          {"flow_misses", c.flow_misses},
          {"flows_reclassified", c.flows_reclassified},
          {"flows_aged", c.flows_aged},
          {"authz_checks", c.authz_checks},
          {"authz_denied_flows", c.authz_denied_flows},
          {"reply_flows", c.reply_flows},
          {"service_flows", c.service_flows},
          {"egress_flows", c.egress_flows},
          {"egress_tx", c.egress_tx},
          {"egress_rx", c.egress_rx},
          {"host_inspected", c.host_inspected},
          {"host_allowed", c.host_allowed},
          {"host_denied_flows", c.host_denied_flows},
          {"arp_replies", c.arp_replies},
          {"nd_adverts", c.nd_adverts},
          {"solicitations_sent", c.solicitations_sent},
          {"neighbours_learned", c.neighbours_learned},
          {"icmp_errors_sent", c.icmp_errors_sent},
          {"fragments_made", c.fragments_made},
          {"handoff_out", c.handoff_out},
          {"handoff_in", c.handoff_in}};
}

std::string stats_table(const StatsView& v) {
  WorkerCounters t = v.total();
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "node %s, %zu worker(s)\n", v.node.c_str(), v.workers.size());
  out += line;
  std::snprintf(line, sizeof line, "  %-8s %12s %14s %12s %14s\n", "port", "rx pkts", "rx bytes",
                "tx pkts", "tx bytes");
  out += line;
  std::snprintf(line, sizeof line, "  %-8s %12llu %14llu %12llu %14llu\n", "local",
                (unsigned long long)t.local_rx, (unsigned long long)t.local_rx_bytes,
                (unsigned long long)t.local_tx, (unsigned long long)t.local_tx_bytes);
  out += line;
  std::snprintf(line, sizeof line, "  %-8s %12llu %14llu %12llu %14llu\n", "fabric",
                (unsigned long long)t.fabric_rx, (unsigned long long)t.fabric_rx_bytes,
                (unsigned long long)t.fabric_tx, (unsigned long long)t.fabric_tx_bytes);
  out += line;
  out += "  events:";
  int col = 0;
  for (auto& [name, val] : counter_fields(t)) {
    if (std::string(name).find("_rx") != std::string::npos ||
        std::string(name).find("_tx") != std::string::npos || val == 0)
      continue;
    std::snprintf(line, sizeof line, "%s %s=%llu", col++ % 4 == 0 ? "\n   " : "", name,
                  (unsigned long long)val);
    out += line;
  }
  out += "\n  drops:";
  if (t.total_drops() == 0) out += " none";
  out += "\n";
  for (unsigned r = 0; r < kDropReasonCount; r++) {
    if (!t.drops[r]) continue;
    std::snprintf(line, sizeof line, "    %-18s %10llu  %s\n", drop_reason_name(DropReason(r)),
                  (unsigned long long)t.drops[r], drop_reason_description(DropReason(r)));
    out += line;
  }
  return out;
}

std::string stats_json(const StatsView& v) {
  auto one = [](const WorkerCounters& c) {
    nlohmann::json j;
    for (auto& [name, val] : counter_fields(c)) j[name] = val;
    nlohmann::json d = nlohmann::json::object();
    for (unsigned r = 0; r < kDropReasonCount; r++)
      if (c.drops[r]) d[drop_reason_name(DropReason(r))] = c.drops[r];
    j["drops"] = d;
    j["drops_total"] = c.total_drops();
    return j;
  };
  nlohmann::json j;
  j["node"] = v.node;
  j["total"] = one(v.total());
  j["workers"] = nlohmann::json::array();
  for (const auto& w : v.workers) j["workers"].push_back(one(w));
  return j.dump(2);
}

}  // namespace vanish::dp
