#include "ctl/vanishctl_flows.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "ctl/config_loader.hpp"
#include "ctl/control_client.hpp"
#include "ctl/vanishctl_check.hpp"   // kExitBadInput
#include "ctl/vanishctl_config.hpp"  // kExitOk, kExitInvalid
#include "dataplane/types.hpp"

namespace vanish::ctl {

namespace {

using Json = nlohmann::ordered_json;

// --socket, $VANISH_CTL_SOCKET, the node's default path (--config FILE), or the only socket in
// /run/vanish: the rules of every vanishctl command that talks to vanishd (vanishctl_config.hpp).
bool socket_path(const FlowsCmdOptions& o, std::string* path, std::string* why) {
  std::string node;
  if (o.socket.empty() && !o.config.empty()) {
    node = config_node(o.config);
    if (node.empty()) {
      *why = "cannot load " + o.config;
      return false;
    }
  }
  return resolve_socket(o.socket, node, path, why);
}

class Session {
 public:
  bool open(const FlowsCmdOptions& o, const char* cmd, std::ostream& err) {
    cmd_ = cmd;
    std::string path, why;
    if (!socket_path(o, &path, &why) || !c_.connect(path, &why)) {
      err << "vanishctl " << cmd << ": " << why << "\n";
      return false;
    }
    return true;
  }
  bool call(v1::Request& req, v1::Response* resp, std::ostream& err) {
    std::string why;
    if (!c_.call(req, resp, &why, std::chrono::seconds(10))) {
      err << "vanishctl " << cmd_ << ": " << why << "\n";
      return false;
    }
    return true;
  }

 private:
  ControlClient c_;
  const char* cmd_ = "";
};

// "10.1.0.10", "5432", "10.1.0.10:5432", "[fd00::1]:80", "fd00::1".
bool parse_match(const std::string& m, v1::FlowMatch* out, std::string* why) {
  if (m.empty()) return true;
  IpAddr a;
  if (IpAddr::parse(m, &a)) {
    out->set_addr(m);
    return true;
  }
  auto port_of = [](const std::string& s, uint32_t* p) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    unsigned long v = std::strtoul(s.c_str(), nullptr, 10);
    if (v == 0 || v > 65535) return false;
    *p = uint32_t(v);
    return true;
  };
  uint32_t port;
  if (port_of(m, &port)) {
    out->set_port(port);
    return true;
  }
  size_t colon = m.rfind(':');
  if (colon != std::string::npos) {
    std::string host = m.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    if (IpAddr::parse(host, &a) && port_of(m.substr(colon + 1), &port)) {
      out->set_addr(host);
      out->set_port(port);
      return true;
    }
  }
  *why = "--match \"" + m + "\": expected an address, a port (1..65535) or ADDR:PORT";
  return false;
}

std::string hostport(const std::string& a, uint32_t port) {
  return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

std::string or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::string human_age(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) / 60 % 60);
  return buf;
}

std::string verdict_text(const v1::FlowInfo& f) {
  std::string v = f.action();
  if (!f.drop_reason().empty()) v += "(" + f.drop_reason() + ")";
  return v;
}

std::string flags_text(const v1::FlowInfo& f) {
  std::string s;
  if (f.is_static()) s += "static,";
  if (f.is_reply()) s += "reply,";
  if (f.stale()) s += "stale,";
  if (s.empty()) return "-";
  s.pop_back();
  return s;
}

Json flow_json(const v1::FlowInfo& f) {
  Json j;
  j["worker"] = f.worker();
  j["zone"] = f.zone();
  j["proto"] = f.proto();
  j["src"] = f.src();
  j["sport"] = f.sport();
  j["dst"] = f.dst();
  j["dport"] = f.dport();
  j["src_workload"] = f.src_workload();
  j["dst_workload"] = f.dst_workload();
  j["src_identity"] = f.src_identity();
  j["dst_identity"] = f.dst_identity();
  j["action"] = f.action();
  j["drop_reason"] = f.drop_reason();
  j["policy"] = f.policy();
  j["authz_reason"] = f.authz_reason();
  j["service"] = f.service();
  j["endpoint"] = f.endpoint();
  j["spi"] = f.spi();
  j["peer"] = f.peer();
  j["packets"] = f.packets();
  j["bytes"] = f.bytes();
  j["age_s"] = f.age_s();
  j["idle_s"] = f.idle_s();
  j["static"] = f.is_static();
  j["reply"] = f.is_reply();
  j["stale"] = f.stale();
  j["host"] = f.host();
  j["host_rule"] = f.host_rule();
  j["host_state"] = f.host_state();
  return j;
}

// Left-aligned columns, two spaces apart.
void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); i++) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); i++) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::vector<std::string> flow_header() {
  return {"W",        "DIR",     "PROTO",  "SOURCE",           "DESTINATION", "FROM", "TO",
          "IDENTITY", "VERDICT", "POLICY", "SERVICE/ENDPOINT", "HOST",        "SA",   "PACKETS",
          "BYTES",    "AGE",     "FLAGS"};
}

std::vector<std::string> flow_row(const v1::FlowInfo& f) {
  std::string svc = f.service();
  if (!f.endpoint().empty()) svc += (svc.empty() ? "" : " -> ") + f.endpoint();
  char spi[16] = "-";
  if (f.spi()) std::snprintf(spi, sizeof spi, "0x%08x", f.spi());
  std::string policy = f.policy();
  if (policy.empty() && !f.authz_reason().empty()) policy = "(" + f.authz_reason() + ")";
  // Egress: the host pattern that decided and its rule, or the inspection state.
  std::string host = f.host();
  if (!host.empty() && !f.host_rule().empty()) host += " (" + f.host_rule() + ")";
  if (host.empty() && !f.host_state().empty()) host = "(" + f.host_state() + ")";
  return {std::to_string(f.worker()),
          f.zone(),
          f.proto(),
          hostport(f.src(), f.sport()),
          hostport(f.dst(), f.dport()),
          or_dash(f.src_workload()),
          or_dash(f.dst_workload()),
          or_dash(f.src_identity()),
          verdict_text(f),
          or_dash(policy),
          or_dash(svc),
          or_dash(host),
          spi,
          std::to_string(f.packets()),
          std::to_string(f.bytes()),
          human_age(f.age_s()),
          flags_text(f)};
}

bool check_ok(const v1::Response& resp, const char* cmd, std::ostream& err) {
  if (resp.ok()) return true;
  err << "vanishctl " << cmd << ": " << resp.error() << "\n";
  return false;
}

void fill_tuple(const FlowsCmdOptions& o, v1::FlowTuple* t) {
  t->set_src(o.src);
  t->set_dst(o.dst);
  t->set_sport(o.sport);
  t->set_dport(o.dport);
  t->set_proto(o.proto);
  t->set_zone(o.zone);
}

// Client-side checks of the flow key options (vanishd checks again).
bool check_tuple(const FlowsCmdOptions& o, const char* cmd, std::ostream& err) {
  IpAddr s, d;
  if (!IpAddr::parse(o.src, &s)) {
    err << "vanishctl " << cmd << ": --src \"" << o.src << "\" is not an IPv4 or IPv6 address\n";
    return false;
  }
  if (!IpAddr::parse(o.dst, &d)) {
    err << "vanishctl " << cmd << ": --dst \"" << o.dst << "\" is not an IPv4 or IPv6 address\n";
    return false;
  }
  if (s.is_v4() != d.is_v4()) {
    err << "vanishctl " << cmd << ": --src and --dst are of different address families\n";
    return false;
  }
  return true;
}

}  // namespace

int run_flows(const FlowsCmdOptions& o, std::ostream& out, std::ostream& err) {
  v1::Request req;
  v1::ListFlows* q = req.mutable_flows();
  std::string why;
  if (!parse_match(o.match, q->mutable_match(), &why)) {
    err << "vanishctl flows: " << why << "\n";
    return kExitBadInput;
  }
  if (o.worker >= 0) q->set_worker(uint32_t(o.worker));
  q->set_limit(o.limit);
  Session s;
  v1::Response resp;
  if (!s.open(o, "flows", err) || !s.call(req, &resp, err)) return kExitBadInput;
  if (!check_ok(resp, "flows", err)) return kExitInvalid;
  const v1::FlowList& l = resp.flows();
  if (o.output == "json") {
    Json j;
    j["total"] = l.total();
    j["shown"] = l.flows_size();
    j["flows"] = Json::array();
    for (const auto& f : l.flows()) j["flows"].push_back(flow_json(f));
    j["errors"] = Json::array();
    for (const auto& e : l.errors()) j["errors"].push_back(e);
    out << j.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows{flow_header()};
  for (const auto& f : l.flows()) rows.push_back(flow_row(f));
  print_table(rows, out);
  out << "showing " << l.flows_size() << " of " << l.total() << " flow entries";
  if (uint64_t(l.flows_size()) < l.total()) out << " (--limit " << o.limit << " per worker)";
  out << "\n";
  for (const auto& e : l.errors()) err << "vanishctl flows: " << e << "\n";
  return kExitOk;
}

int run_flow_change(const FlowsCmdOptions& o, bool add, std::ostream& out, std::ostream& err) {
  const char* cmd = add ? "flow add" : "flow del";
  if (!check_tuple(o, cmd, err)) return kExitBadInput;
  v1::Request req;
  if (add) {
    v1::AddFlow* a = req.mutable_flow_add();
    a->set_worker(uint32_t(o.worker));
    fill_tuple(o, a->mutable_flow());
    a->set_verdict(o.verdict);
    if (!o.endpoint.empty()) {
      if (o.verdict != "allow") {
        err << "vanishctl flow add: --endpoint needs --verdict allow\n";
        return kExitBadInput;
      }
      a->set_endpoint(o.endpoint);
    }
  } else {
    v1::DelFlow* d = req.mutable_flow_del();
    d->set_worker(uint32_t(o.worker));
    fill_tuple(o, d->mutable_flow());
  }
  Session s;
  v1::Response resp;
  if (!s.open(o, cmd, err) || !s.call(req, &resp, err)) return kExitBadInput;
  if (!check_ok(resp, cmd, err)) return kExitInvalid;
  const v1::FlowChange& c = resp.flow_change();
  if (o.output == "json") {
    Json j;
    j["existed"] = c.existed();
    j["flow"] = flow_json(c.flow());
    out << j.dump(2) << "\n";
    return kExitOk;
  }
  out << (add ? (c.existed() ? "pinned (existing entry):" : "pinned (new entry):") : "removed:")
      << "\n";
  print_table({flow_header(), flow_row(c.flow())}, out);
  return kExitOk;
}

int run_trace(const FlowsCmdOptions& o, std::ostream& out, std::ostream& err) {
  v1::Request req;
  v1::TraceCommand* t = req.mutable_trace();
  std::string why;
  if (!parse_match(o.match, t->mutable_match(), &why)) {
    err << "vanishctl trace: " << why << "\n";
    return kExitBadInput;
  }
  if (o.worker >= 0) t->set_worker(uint32_t(o.worker));
  t->set_op(v1::TraceCommand::ARM);
  t->set_count(o.count);
  Session s;
  v1::Response resp;
  if (!s.open(o, "trace", err) || !s.call(req, &resp, err)) return kExitBadInput;
  if (!check_ok(resp, "trace", err)) return kExitInvalid;
  // Poll until every worker captured its packets (or nothing is armed) or the timeout.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
  t->set_op(v1::TraceCommand::FETCH);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!s.call(req, &resp, err)) return kExitBadInput;
    if (!check_ok(resp, "trace", err)) return kExitInvalid;
    if (resp.trace().packets() >= o.count || !resp.trace().armed()) break;
  }
  t->set_op(v1::TraceCommand::DISARM);
  if (!s.call(req, &resp, err)) return kExitBadInput;
  if (!check_ok(resp, "trace", err)) return kExitInvalid;
  const v1::TraceResult& r = resp.trace();
  if (o.output == "json") {
    Json j;
    j["packets"] = r.packets();
    j["truncated"] = r.truncated();
    j["records"] = Json::array();
    for (const auto& x : r.records()) {
      Json k;
      k["worker"] = x.worker();
      k["packet"] = x.packet();
      k["stage"] = x.stage();
      k["verdict"] = x.verdict();
      k["next"] = x.next();
      k["drop_reason"] = x.drop_reason();
      k["proto"] = x.proto();
      k["src"] = x.src();
      k["sport"] = x.sport();
      k["dst"] = x.dst();
      k["dport"] = x.dport();
      k["len"] = x.len();
      k["action"] = x.action();
      k["flow"] = x.flow();
      k["t_us"] = x.t_us();
      j["records"].push_back(k);
    }
    j["errors"] = Json::array();
    for (const auto& e : r.errors()) j["errors"].push_back(e);
    out << j.dump(2) << "\n";
  } else {
    // Grouped by (worker, packet), stages in order.
    std::map<std::pair<uint32_t, uint32_t>, std::vector<const v1::TraceRecord*>> pkts;
    for (const auto& x : r.records()) pkts[{x.worker(), x.packet()}].push_back(&x);
    for (const auto& [id, recs] : pkts) {
      std::string tuple;
      for (const auto* x : recs)
        if (!x->proto().empty()) {
          tuple = x->proto() + " " + hostport(x->src(), x->sport()) + " -> " +
                  hostport(x->dst(), x->dport());
          break;
        }
      out << "worker " << id.first << " packet " << id.second << (tuple.empty() ? "" : ": ")
          << tuple << "\n";
      for (const auto* x : recs) {
        char t[32];
        std::snprintf(t, sizeof t, "%+10.3fus", x->t_us());
        std::string what = x->verdict();
        if (!x->next().empty()) what += " -> " + x->next();
        if (!x->drop_reason().empty()) what += " " + x->drop_reason();
        std::string extra;
        if (x->len()) extra += " len " + std::to_string(x->len());
        if (!x->action().empty()) extra += " action " + x->action();
        if (x->flow() >= 0) extra += " flow " + std::to_string(x->flow());
        char line[256];
        std::snprintf(line, sizeof line, "  %s  %-18s %-32s%s", t, x->stage().c_str(), what.c_str(),
                      extra.c_str());
        out << line << "\n";
      }
    }
    out << r.packets() << " packet(s) traced" << (r.truncated() ? " (record buffer full)" : "")
        << "\n";
  }
  for (const auto& e : r.errors()) err << "vanishctl trace: " << e << "\n";
  return r.packets() > 0 ? kExitOk : kExitInvalid;
}

void add_flows_commands(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<FlowsCmdOptions>();
  const char* socket_help =
      "vanishd's control socket (default: $VANISH_CTL_SOCKET, else /run/vanish/<node>.sock)";
  const char* match_help = "only flows with this address or port (either side), or ADDR:PORT";
  auto common = [&](CLI::App* c) {
    c->add_option("--socket", o->socket, socket_help);
    c->add_option("--config", o->config, "a config file naming the node (for the default socket)");
    c->add_option("-o,--output", o->output, "output format")
        ->check(CLI::IsMember({"text", "json"}));
  };
  const char* exit_footer =
      "Exit status: 0 ok, 1 refused by vanishd (or nothing traced), 2 bad input or vanishd "
      "unreachable.";

  CLI::App* f = app.add_subcommand(
      "flows",
      "the workers' flow tables: 5-tuple, direction, workloads, identity, verdict, "
      "policy, service/endpoint, SA, packets/bytes, age");
  f->add_option("--worker", o->worker, "only this worker")->check(CLI::NonNegativeNumber);
  f->add_option("--match", o->match, match_help);
  f->add_option("--limit", o->limit, "at most N entries per worker (1..10000)")
      ->check(CLI::Range(1u, 10000u));
  common(f);
  f->footer(exit_footer);
  f->callback([o, run] { *run = [o] { return run_flows(*o, std::cout, std::cerr); }; });

  CLI::App* fl = app.add_subcommand("flow", "pin (add) or remove (del) a static flow entry");
  fl->require_subcommand(1);
  fl->footer(
      "A static entry is never aged and never re-classified by a later config generation.\n"
      "  --verdict deny   every packet of the flow is dropped (drop reason static_deny)\n"
      "  --verdict allow  the flow is classified now, as its first packet would be, and that\n"
      "                   decision is kept; --endpoint IP:PORT pins a service VIP flow to that\n"
      "                   endpoint (which must be one of the VIP's endpoints).\n" +
      std::string(exit_footer));
  auto key_opts = [&](CLI::App* c) {
    c->add_option("--worker", o->worker, "the worker whose table holds the flow")
        ->required()
        ->check(CLI::NonNegativeNumber);
    c->add_option("--src", o->src, "source address")->required();
    c->add_option("--dst", o->dst, "destination address (the VIP for a service flow)")->required();
    c->add_option("--sport", o->sport, "source port")->required()->check(CLI::Range(1u, 65535u));
    c->add_option("--dport", o->dport, "destination port")
        ->required()
        ->check(CLI::Range(1u, 65535u));
    c->add_option("--proto", o->proto, "tcp or udp")
        ->required()
        ->check(CLI::IsMember({"tcp", "udp"}));
    c->add_option("--zone", o->zone,
                  "out: as received on the local port (default); in: decrypted from the fabric")
        ->check(CLI::IsMember({"out", "in"}));
    common(c);
  };
  CLI::App* add = fl->add_subcommand("add", "pin a static flow entry");
  key_opts(add);
  add->add_option("--verdict", o->verdict, "allow or deny")
      ->required()
      ->check(CLI::IsMember({"allow", "deny"}));
  add->add_option("--endpoint", o->endpoint, "IP:PORT ([IPv6]:PORT): pin this service endpoint");
  add->callback(
      [o, run] { *run = [o] { return run_flow_change(*o, true, std::cout, std::cerr); }; });
  CLI::App* del = fl->add_subcommand("del", "remove a flow entry (static or not)");
  key_opts(del);
  del->callback(
      [o, run] { *run = [o] { return run_flow_change(*o, false, std::cout, std::cerr); }; });

  CLI::App* tr = app.add_subcommand(
      "trace", "trace the next N matching packets through the pipeline stages (like VPP's trace)");
  tr->add_option("--count", o->count, "packets to trace per worker (1..256)")
      ->required()
      ->check(CLI::Range(1u, 256u));
  tr->add_option("--match", o->match, match_help);
  tr->add_option("--worker", o->worker, "only this worker")->check(CLI::NonNegativeNumber);
  tr->add_option("--timeout", o->timeout_s, "seconds to wait for the packets (default 5)")
      ->check(CLI::Range(0.1, 3600.0));
  common(tr);
  tr->footer(
      "Each record: time since the worker's first record, stage, verdict (next -> STAGE, drop "
      "REASON,\ntx-local, tx-fabric, gone), packet length, outbound action and flow entry.\n" +
      std::string(exit_footer));
  tr->callback([o, run] { *run = [o] { return run_trace(*o, std::cout, std::cerr); }; });
}

}  // namespace vanish::ctl
