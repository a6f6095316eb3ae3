// vanishctl flows / flow add|del / trace, served on the control thread (ctl_service.hpp): every
// look at or change of a worker's flow table or trace goes through that worker's mailbox
// (worker_mailbox.hpp), answered between bursts within kMailTimeout or reported as an error.
#include <rte_byteorder.h>
#include <rte_cycles.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "ctl/authz.hpp"
#include "dataplane/host_policy.hpp"
#include "dataplane/ctl_service.hpp"

namespace vanish::dp {

namespace {

namespace v1 = ctl::v1;
constexpr std::chrono::milliseconds kMailTimeout{500};
constexpr uint32_t kDefaultLimit = 100, kMaxLimit = 10000;

const char* proto_name(uint8_t p) {
  switch (p) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
      return "icmp";
    case 58:
      return "icmpv6";
  }
  return "other";
}

const char* zone_name(uint8_t z) {
  switch (z) {
    case kZoneOutbound:
      return "out";
    case kZoneInbound:
      return "in";
    case kZoneReplyIndex:
      return "reply-index";
  }
  return "?";
}

const char* action_name(FlowAction a) {
  switch (a) {
    case FlowAction::kDrop:
      return "drop";
    case FlowAction::kEncrypt:
      return "encrypt";
    case FlowAction::kHairpin:
      return "hairpin";
    case FlowAction::kDeliver:
      return "deliver";
    case FlowAction::kEgress:
      return "egress";
  }
  return "?";
}

bool parse_match(const v1::FlowMatch& m, FlowMatch* out, std::string* err) {
  *out = FlowMatch{};
  if (!m.addr().empty()) {
    if (!IpAddr::parse(m.addr(), &out->addr)) {
      *err = "match: \"" + m.addr() + "\" is not an IPv4 or IPv6 address";
      return false;
    }
    out->has_addr = true;
  }
  if (m.port() > 65535) {
    *err = "match: port " + std::to_string(m.port()) + " is out of range";
    return false;
  }
  if (m.port()) {
    out->has_port = true;
    out->port_be = rte_cpu_to_be_16(uint16_t(m.port()));
  }
  return true;
}

bool parse_tuple(const v1::FlowTuple& t, FlowKey* k, std::string* err) {
  IpAddr src, dst;
  if (!IpAddr::parse(t.src(), &src)) {
    *err = "src: \"" + t.src() + "\" is not an IPv4 or IPv6 address";
    return false;
  }
  if (!IpAddr::parse(t.dst(), &dst)) {
    *err = "dst: \"" + t.dst() + "\" is not an IPv4 or IPv6 address";
    return false;
  }
  if (src.is_v4() != dst.is_v4()) {
    *err = "src and dst are of different address families";
    return false;
  }
  if (t.sport() == 0 || t.sport() > 65535 || t.dport() == 0 || t.dport() > 65535) {
    *err = "sport and dport must be 1..65535";
    return false;
  }
  uint8_t proto;
  if (t.proto() == "tcp")
    proto = 6;
  else if (t.proto() == "udp")
    proto = 17;
  else {
    *err = "proto: \"" + t.proto() + "\" is not tcp or udp";
    return false;
  }
  uint8_t zone;
  if (t.zone().empty() || t.zone() == "out")
    zone = kZoneOutbound;
  else if (t.zone() == "in")
    zone = kZoneInbound;
  else {
    *err = "zone: \"" + t.zone() + "\" is not out or in";
    return false;
  }
  *k = FlowKey{};
  std::memcpy(k->src, src.b.data(), 16);
  std::memcpy(k->dst, dst.b.data(), 16);
  k->sport = rte_cpu_to_be_16(uint16_t(t.sport()));
  k->dport = rte_cpu_to_be_16(uint16_t(t.dport()));
  k->proto = proto;
  k->zone = zone;
  return true;
}

std::string endpoint_str(const IpAddr& a, uint16_t port_be) {
  std::string s = a.is_v4() ? a.str() : "[" + a.str() + "]";
  return s + ":" + std::to_string(rte_be_to_cpu_16(port_be));
}

std::string workload_name(const Snapshot& s, uint32_t w) {
  if (w >= s.workload_meta.size()) return "";
  return s.workload_meta[w].ns + "/" + s.workload_meta[w].name;
}

std::string principal_of(const Snapshot& s, uint32_t wire_id) {
  if (!wire_id) return "";
  const uint32_t* i = s.identity_by_id.find(wire_id);
  return i && *i < s.identities.size() ? s.identities[*i].principal : "";
}

void fill_flow(const Snapshot& s, unsigned worker, const FlowKey& k, const FlowEntry& e,
               uint64_t now_tsc, v1::FlowInfo* f) {
  const double hz = double(rte_get_tsc_hz());
  f->set_worker(worker);
  f->set_zone(zone_name(k.zone));
  f->set_proto(proto_name(k.proto));
  f->set_src(k.src_ip().str());
  f->set_sport(rte_be_to_cpu_16(k.sport));
  f->set_dst(k.dst_ip().str());
  f->set_dport(rte_be_to_cpu_16(k.dport));
  f->set_src_workload(workload_name(s, e.src_workload));
  f->set_dst_workload(workload_name(s, e.dst_workload));
  f->set_src_identity(principal_of(s, e.identity));
  if (e.dst_workload < s.workloads.size())
    f->set_dst_identity(principal_of(s, s.workloads[e.dst_workload].identity.value));
  f->set_action(action_name(e.action));
  if (e.action == FlowAction::kDrop)
    f->set_drop_reason(drop_reason_name(DropReason(e.drop_reason)));
  if (s.authz && e.policy < s.authz->n_policies())
    f->set_policy(s.authz->policy(authz::PolicyId{e.policy}).key());
  if (e.authz_reason) f->set_authz_reason(authz::reason_code(authz::Reason(e.authz_reason - 1)));
  if (e.service < s.service_meta.size()) f->set_service(s.service_meta[e.service].hostname);
  if (e.nat != NatKind::kNone) f->set_endpoint(endpoint_str(e.nat_addr, e.nat_port));
  if (e.node < s.nodes.size()) f->set_peer(s.nodes[e.node].name);
  if (e.action == FlowAction::kEncrypt && e.node < s.peer_tx.size() && worker < kMaxWorkers) {
    if (const crypto::EspSa* sa = s.peer_tx[e.node].sa[worker]) f->set_spi(sa->spi());
  }
  f->set_packets(e.packets);
  f->set_bytes(e.bytes);
  if (e.created_tsc && now_tsc >= e.created_tsc) f->set_age_s(double(now_tsc - e.created_tsc) / hz);
  if (e.created_tsc) f->set_idle_s(double(e.idle_ticks(now_tsc)) / hz);
  f->set_is_static(e.is_static != 0);
  f->set_is_reply(e.is_reply != 0);
  f->set_stale(k.zone != kZoneReplyIndex && !e.is_static &&
               e.generation != gen32(s.decision_generation));
  if (s.egress && e.generation == gen32(s.decision_generation) &&
      e.host_pattern < s.egress->patterns.size()) {
    const HostPattern& hp = s.egress->patterns[e.host_pattern];
    f->set_host(hp.host);
    f->set_host_rule(s.egress->rules[hp.rule].name);
  }
  static const char* const kStates[] = {"", "pending", "decided", "dns"};
  if (e.host_state < 4) f->set_host_state(kStates[e.host_state]);
}

std::string status_text(WorkerMailbox::Status st) {
  switch (st) {
    case WorkerMailbox::Status::kOk:
      return "ok";
    case WorkerMailbox::Status::kBusy:
      return "busy with an earlier request that timed out";
    case WorkerMailbox::Status::kTimeout:
      return "did not answer within 500 ms";
    case WorkerMailbox::Status::kStopped:
      return "not running";
  }
  return "?";
}

// The workers a request names: one (checked) or all.
bool pick_workers(const ControlContext& c, bool has, uint32_t w, std::vector<unsigned>* out,
                  std::string* err) {
  out->clear();
  if (has) {
    if (w >= c.workers.size()) {
      *err = "worker " + std::to_string(w) + " does not exist (" +
             std::to_string(c.workers.size()) + " worker(s): 0.." +
             std::to_string(c.workers.size() ? c.workers.size() - 1 : 0) + ")";
      return false;
    }
    out->push_back(w);
    return true;
  }
  for (unsigned i = 0; i < c.workers.size(); i++) out->push_back(i);
  return true;
}

// Posts `req` to every worker of `ws`, then waits for all with one deadline. st[i]: per worker.
void call_all(ControlContext& c, const std::vector<unsigned>& ws, const MailRequest& req,
              std::vector<WorkerMailbox::Status>* st) {
  st->assign(ws.size(), WorkerMailbox::Status::kOk);
  auto deadline = std::chrono::steady_clock::now() + kMailTimeout;
  for (size_t i = 0; i < ws.size(); i++) {
    Worker* w = c.workers[ws[i]];
    (*st)[i] = w->running() ? w->mailbox().post(req) : WorkerMailbox::Status::kStopped;
  }
  for (size_t i = 0; i < ws.size(); i++) {
    if ((*st)[i] != WorkerMailbox::Status::kOk) continue;
    Worker* w = c.workers[ws[i]];
    (*st)[i] = w->mailbox().wait(deadline, [w] { return w->running(); });
  }
}

void fail(v1::Response* resp, const std::string& e) {
  resp->set_ok(false);
  resp->set_error(e);
}

void list_flows(ControlContext& c, const v1::ListFlows& q, v1::Response* resp) {
  std::string err;
  std::vector<unsigned> ws;
  MailRequest req;
  req.op = MailOp::kDumpFlows;
  if (!pick_workers(c, q.has_worker(), q.worker(), &ws, &err) ||
      !parse_match(q.match(), &req.match, &err))
    return fail(resp, "flows: " + err);
  req.limit = q.limit() ? std::min(q.limit(), kMaxLimit) : kDefaultLimit;
  std::vector<WorkerMailbox::Status> st;
  call_all(c, ws, req, &st);
  const Snapshot& s = *c.pub->current();
  v1::FlowList* out = resp->mutable_flows();
  uint64_t now = rte_rdtsc();
  for (size_t i = 0; i < ws.size(); i++) {
    if (st[i] != WorkerMailbox::Status::kOk) {
      out->add_errors("worker " + std::to_string(ws[i]) + ": " + status_text(st[i]));
      continue;
    }
    const MailResult& r = c.workers[ws[i]]->mailbox().result();
    out->set_total(out->total() + r.total);
    for (const FlowRecord& f : r.flows) fill_flow(s, ws[i], f.key, f.entry, now, out->add_flows());
  }
  resp->set_ok(out->errors_size() < int(ws.size()) || ws.empty());
  if (!resp->ok()) resp->set_error("flows: no worker answered");
}

void change_flow(ControlContext& c, const v1::Request& rq, v1::Response* resp) {
  const bool add = rq.has_flow_add();
  const char* cmd = add ? "flow add" : "flow del";
  const uint32_t worker = add ? rq.flow_add().worker() : rq.flow_del().worker();
  const v1::FlowTuple& t = add ? rq.flow_add().flow() : rq.flow_del().flow();
  std::string err;
  std::vector<unsigned> ws;
  MailRequest req;
  req.op = add ? MailOp::kAddFlow : MailOp::kDelFlow;
  if (!pick_workers(c, true, worker, &ws, &err) || !parse_tuple(t, &req.key, &err))
    return fail(resp, std::string(cmd) + ": " + err);
  if (add) {
    const v1::AddFlow& a = rq.flow_add();
    if (a.verdict() != "allow" && a.verdict() != "deny")
      return fail(resp, "flow add: verdict: \"" + a.verdict() + "\" is not allow or deny");
    req.deny = a.verdict() == "deny";
    if (!a.endpoint().empty()) {
      if (req.deny) return fail(resp, "flow add: --endpoint needs --verdict allow");
      if (req.key.zone != kZoneOutbound) return fail(resp, "flow add: --endpoint needs --zone out");
      const std::string& e = a.endpoint();
      size_t colon = e.rfind(':');
      std::string host = colon == std::string::npos ? "" : e.substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      unsigned long port = 0;
      if (colon != std::string::npos) port = std::strtoul(e.c_str() + colon + 1, nullptr, 10);
      if (!IpAddr::parse(host, &req.endpoint) || port == 0 || port > 65535)
        return fail(resp, "flow add: endpoint: \"" + e + "\" is not IP:PORT ([IPv6]:PORT)");
      req.has_endpoint = true;
      req.endpoint_port_be = rte_cpu_to_be_16(uint16_t(port));
    }
  }
  Worker* w = c.workers[ws[0]];
  WorkerMailbox::Status st = w->mailbox().call(req, kMailTimeout, [w] { return w->running(); });
  if (st != WorkerMailbox::Status::kOk)
    return fail(resp,
                std::string(cmd) + ": worker " + std::to_string(ws[0]) + " " + status_text(st));
  const MailResult& r = w->mailbox().result();
  if (r.error != MailError::kNone)
    return fail(resp, std::string(cmd) + ": " + mail_error_text(r.error));
  resp->set_ok(true);
  v1::FlowChange* ch = resp->mutable_flow_change();
  ch->set_existed(r.existed);
  if (!r.flows.empty())
    fill_flow(*c.pub->current(), ws[0], r.flows[0].key, r.flows[0].entry, rte_rdtsc(),
              ch->mutable_flow());
}

void trace(ControlContext& c, const v1::TraceCommand& q, v1::Response* resp) {
  std::string err;
  std::vector<unsigned> ws;
  MailRequest req;
  if (!pick_workers(c, q.has_worker(), q.worker(), &ws, &err) ||
      !parse_match(q.match(), &req.match, &err))
    return fail(resp, "trace: " + err);
  switch (q.op()) {
    case v1::TraceCommand::ARM:
      if (q.count() < 1 || q.count() > TraceState::kMaxPackets)
        return fail(resp, "trace: count must be 1.." + std::to_string(TraceState::kMaxPackets));
      req.op = MailOp::kTraceArm;
      req.count = q.count();
      break;
    case v1::TraceCommand::FETCH:
      req.op = MailOp::kTraceFetch;
      break;
    case v1::TraceCommand::DISARM:
      req.op = MailOp::kTraceDisarm;
      break;
    default:
      return fail(resp, "trace: unknown op");
  }
  std::vector<WorkerMailbox::Status> st;
  call_all(c, ws, req, &st);
  v1::TraceResult* out = resp->mutable_trace();
  const double hz = double(rte_get_tsc_hz());
  for (size_t i = 0; i < ws.size(); i++) {
    if (st[i] != WorkerMailbox::Status::kOk) {
      out->add_errors("worker " + std::to_string(ws[i]) + ": " + status_text(st[i]));
      continue;
    }
    const MailResult& r = c.workers[ws[i]]->mailbox().result();
    out->set_packets(out->packets() + r.trace_packets);
    out->set_remaining(out->remaining() + r.trace_remaining);
    out->set_armed(out->armed() || r.trace_armed);
    out->set_truncated(out->truncated() || r.trace_truncated);
    uint64_t t0 = r.trace.empty() ? 0 : r.trace.front().tsc;
    for (const TraceRecord& t : r.trace) {
      v1::TraceRecord* o = out->add_records();
      o->set_worker(ws[i]);
      o->set_packet(t.packet);
      o->set_stage(trace_stage_name(t.stage));
      o->set_verdict(trace_verdict_name(t.verdict));
      if (t.verdict == TraceVerdict::kNext) o->set_next(trace_stage_name(t.next));
      if (t.verdict == TraceVerdict::kDrop)
        o->set_drop_reason(drop_reason_name(DropReason(t.drop_reason)));
      if (t.has_key) {
        o->set_proto(proto_name(t.key.proto));
        o->set_src(t.key.src_ip().str());
        o->set_sport(rte_be_to_cpu_16(t.key.sport));
        o->set_dst(t.key.dst_ip().str());
        o->set_dport(rte_be_to_cpu_16(t.key.dport));
        if (t.stage == TraceStage::kClassify || t.stage == TraceStage::kTtl ||
            t.stage == TraceStage::kFabricMtu)
          o->set_action(action_name(t.action));
      }
      o->set_len(t.len);
      o->set_flow(t.flow == ~0u ? -1 : int64_t(t.flow));
      o->set_t_us(double(t.tsc - t0) * 1e6 / hz);
    }
  }
  resp->set_ok(out->errors_size() < int(ws.size()) || ws.empty());
  if (!resp->ok()) resp->set_error("trace: no worker answered");
}

}  // namespace

bool handle_flows(ControlContext& c, const ctl::v1::Request& req, ctl::v1::Response* resp) {
  switch (req.command_case()) {
    case v1::Request::kFlows:
      list_flows(c, req.flows(), resp);
      return true;
    case v1::Request::kFlowAdd:
    case v1::Request::kFlowDel:
      change_flow(c, req, resp);
      return true;
    case v1::Request::kTrace:
      trace(c, req.trace(), resp);
      return true;
    default:
      return false;
  }
}

}  // namespace vanish::dp
