// `vanishctl flows`, `vanishctl flow add|del`, `vanishctl trace`: a running vanishd's per-worker
// flow tables and packet trace, through its control socket (ctl/proto/vanish/ctl.proto, served
// by dataplane/ctl_flows.cpp through each worker's mailbox).
//
// Contract
// - flows [--worker N] [--match M] [--limit N]: the flow entries (5-tuple, direction, workloads,
//   source identity, verdict, policy, service/endpoint, SA, packets/bytes, age); M is an address
//   (either side), a port (either side) or ADDR:PORT. At most --limit per worker; the footer says
//   how many matched in all.
// - flow add --worker N --src IP --dst IP --sport P --dport P --proto tcp|udp [--zone out|in]
//   --verdict allow|deny [--endpoint IP:PORT]: pins a static entry (never aged, never
//   re-classified). deny: the flow's packets are dropped as static_deny. allow: the flow is
//   classified now as its first packet would be and that decision is kept across config
//   generations; --endpoint pins a service VIP flow to that endpoint.
//   flow del (same key options): removes the entry (static or not).
// - trace --count N [--match M] [--worker N] [--timeout S]: the next N matching packets on each
//   worker, one record per stage; waits until N were captured or --timeout, then disarms.
// - -o text|json everywhere; --socket PATH, else $VANISH_CTL_SOCKET, else the node's default
//   socket (--config FILE names the node), else the only socket in /run/vanish.
// - Exit status: 0 ok; 1 vanishd refused (no such flow, not an endpoint, no worker answered,
//   trace captured nothing); 2 bad input or vanishd unreachable.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace vanish::ctl {

struct FlowsCmdOptions {
  std::string socket, config, output = "text";
  int worker = -1;  // -1: every worker (flows, trace); add/del need one
  std::string match;
  unsigned limit = 100;
  // flow add/del
  std::string src, dst, proto, zone = "out", verdict, endpoint;
  unsigned sport = 0, dport = 0;
  // trace
  unsigned count = 0;
  double timeout_s = 5;
};

int run_flows(const FlowsCmdOptions& o, std::ostream& out, std::ostream& err);
int run_flow_change(const FlowsCmdOptions& o, bool add, std::ostream& out, std::ostream& err);
int run_trace(const FlowsCmdOptions& o, std::ostream& out, std::ostream& err);

// Adds `flows`, `flow` (add, del) and `trace` to `app`.
void add_flows_commands(CLI::App& app, std::function<int()>* run);

}  // namespace vanish::ctl
