#include "ctl/vanishctl_views.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "ctl/vanishctl_check.hpp"  // kExitBadInput
#include "ctl/vanishctl_config.hpp"
#include "ctl/views_render.hpp"
#include "vanish/ctl.pb.h"

namespace vanish::ctl {

namespace {

bool fetch(const ViewCmdOptions& o, v1::Request& req, v1::Response* resp, std::ostream& err) {
  std::string node = o.config.empty() ? "" : config_node(o.config);
  std::string cmd = o.view;
  if (!ctl_call(o.socket, node, req, resp, cmd.c_str(), err)) return false;
  if (!resp->ok()) {
    err << "vanishctl " << cmd << ": "
        << (resp->error().empty() ? "vanishd refused the request" : resp->error()) << "\n";
    return false;
  }
  return true;
}

int run_stats(const ViewCmdOptions& o, std::ostream& out, std::ostream& err) {
  auto get = [&](v1::StatsReport* r) {
    v1::Request req;
    req.mutable_stats();
    v1::Response resp;
    if (!fetch(o, req, &resp, err)) return false;
    if (!resp.has_stats()) {
      err << "vanishctl stats: vanishd does not serve stats (older version?)\n";
      return false;
    }
    *r = resp.stats();
    return true;
  };
  v1::StatsReport prev, cur;
  if (!get(&cur)) return kExitBadInput;
  bool json = o.output == "json";
  if (o.watch <= 0) {
    out << (json ? views::stats_json(cur, nullptr).dump(2) + "\n"
                 : views::stats_text(cur, nullptr));
    return kExitOk;
  }
  bool tty = isatty(STDOUT_FILENO) && &out == &std::cout;
  for (uint32_t n = 0; o.count == 0 || n < o.count; n++) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.watch));
    prev = cur;
    if (!get(&cur)) return kExitBadInput;
    if (json) {
      out << views::stats_json(cur, &prev).dump() << "\n";
    } else {
      if (tty) out << "\033[H\033[2J";
      out << views::stats_text(cur, &prev);
      if (!tty) out << "\n";
    }
    out.flush();
  }
  return kExitOk;
}

// vanishctl peers rekey [NODE]
int run_peer_rekey(const ViewCmdOptions& o, const std::string& node, std::ostream& out,
                   std::ostream& err) {
  v1::Request req;
  req.mutable_peer_rekey()->set_node(node);
  v1::Response resp;
  ViewCmdOptions po = o;
  po.view = "peers rekey";
  if (!fetch(po, req, &resp, err)) return kExitBadInput;
  if (resp.payload_case() != v1::Response::kPeerRekey) {
    err << "vanishctl peers rekey: vanishd does not serve this command (older version?)\n";
    return kExitBadInput;
  }
  if (o.output == "json") {
    views::Json j;
    j["rekeying"] = resp.peer_rekey().nodes();
    out << j.dump(2) << "\n";
  } else {
    for (const auto& n : resp.peer_rekey().nodes()) out << "rekey started with " << n << "\n";
  }
  return kExitOk;
}

}  // namespace

int run_view(const ViewCmdOptions& o, std::ostream& out, std::ostream& err) {
  if (o.view == "stats") return run_stats(o, out, err);
  v1::Request req;
  v1::GetView* q = nullptr;
  if (o.view == "workloads")
    q = req.mutable_workloads();
  else if (o.view == "services")
    q = req.mutable_services();
  else if (o.view == "policies")
    q = req.mutable_policies();
  else if (o.view == "sas")
    q = req.mutable_sas();
  else if (o.view == "peers")
    q = req.mutable_peers();
  else {
    err << "vanishctl: unknown view " << o.view << "\n";
    return kExitBadInput;
  }
  q->set_match(o.match);
  q->set_limit(o.limit == 0 ? 100000 : o.limit);
  v1::Response resp;
  if (!fetch(o, req, &resp, err)) return kExitBadInput;
  bool json = o.output == "json";
  auto emit = [&](const views::Json& j, const std::string& text) {
    out << (json ? j.dump(2) + "\n" : text);
  };
  switch (resp.payload_case()) {
    case v1::Response::kWorkloads:
      emit(json ? views::workloads_json(resp.workloads()) : views::Json(),
           json ? "" : views::workloads_text(resp.workloads()));
      break;
    case v1::Response::kServices:
      emit(json ? views::services_json(resp.services()) : views::Json(),
           json ? "" : views::services_text(resp.services()));
      break;
    case v1::Response::kPolicies:
      emit(json ? views::policies_json(resp.policies()) : views::Json(),
           json ? "" : views::policies_text(resp.policies()));
      break;
    case v1::Response::kSas:
      emit(json ? views::sas_json(resp.sas()) : views::Json(),
           json ? "" : views::sas_text(resp.sas()));
      break;
    case v1::Response::kPeers:
      emit(json ? views::peers_json(resp.peers()) : views::Json(),
           json ? "" : views::peers_text(resp.peers()));
      break;
    default:
      err << "vanishctl " << o.view << ": vanishd does not serve this view (older version?)\n";
      return kExitBadInput;
  }
  return kExitOk;
}

void add_view_commands(CLI::App& app, std::function<int()>* run) {
  const char* socket_help =
      "vanishd's control socket (default: $VANISH_CTL_SOCKET, else /run/vanish/<node>.sock)";
  struct View {
    const char* name;
    const char* help;
  };
  const View views[] = {
      {"workloads",
       "workloads of the config being served: namespace/name, node, local or remote, addresses, "
       "identity (principal and wire id), neighbour MAC of local ones"},
      {"services",
       "services: hostname, VIP:port -> endpoints (address:target port, weight), waypoint"},
      {"policies",
       "authorization policies: scope, action, enforced or dry-run, rules, workloads it applies "
       "to"},
      {"sas",
       "ESP SAs (never keys): SPI, direction, peer, worker, cipher, ESN, sequence number, packets, "
       "replay drops (\"off\" for an inbound SA without anti-replay)"},
      {"peers",
       "the other appliances: fabric addresses, reachable or not, keying, SAs, last handshake, "
       "rekeys"},
      {"stats", "counters per worker and in total, every non-zero drop reason; --watch for rates"},
  };
  for (const View& v : views) {
    auto o = std::make_shared<ViewCmdOptions>();
    o->view = v.name;
    CLI::App* c = app.add_subcommand(v.name, v.help);
    c->add_option("--socket", o->socket, socket_help);
    c->add_option("--config", o->config, "a config file naming the node (for the default socket)");
    c->add_option("-o,--output", o->output, "output format")
        ->check(CLI::IsMember({"text", "json"}));
    if (std::string(v.name) == "stats") {
      c->add_option("--watch", o->watch,
                    "refresh every SECONDS (default 1) with rates per second, until Ctrl-C")
          ->expected(0, 1)
          ->default_str("1");
      c->add_option("--count", o->count, "with --watch: stop after N refreshes");
    } else {
      c->add_option("--match", o->match,
                    "only rows with TEXT in a column (case-insensitive; filtered by vanishd)");
      c->add_option("--limit", o->limit, "at most N rows (default 1000; 0: as many as fit)");
    }
    c->footer("Exit status: 0 ok, 2 vanishd unreachable, error reply or bad usage.");
    if (std::string(v.name) == "peers") {
      auto node = std::make_shared<std::string>();
      CLI::App* rk = c->add_subcommand(
          "rekey", "start a rekey (fresh mTLS handshake, new SAs, no packet lost) with NODE or "
                   "every peer");
      rk->add_option("node", *node, "the peer node (default: every peer)");
      rk->add_option("--socket", o->socket, socket_help);
      rk->add_option("--config", o->config, "a config file naming the node");
      rk->add_option("-o,--output", o->output, "output format")
          ->check(CLI::IsMember({"text", "json"}));
      rk->callback([o, node, run] {
        *run = [o, node] { return run_peer_rekey(*o, *node, std::cout, std::cerr); };
      });
      c->callback([o, run, c] {
        if (c->got_subcommand("rekey")) return;
        *run = [o] { return run_view(*o, std::cout, std::cerr); };
      });
      continue;
    }
    c->callback([o, run] { *run = [o] { return run_view(*o, std::cout, std::cerr); }; });
  }
}

}  // namespace vanish::ctl
