#include "dataplane/stage_authorize.hpp"

#include <rte_byteorder.h>

#include "ctl/authz.hpp"
#include "dataplane/conntrack.hpp"
#include "dataplane/nat.hpp"

namespace vanish::dp {

bool InboundAuthorize::decide(WorkerCtx& ctx, const FlowKey& key, uint32_t src_identity,
                              uint32_t dst_workload, FlowEntry& e) {
  const Snapshot& s = *ctx.snap;
  e.is_reply = 0;
  e.nat = NatKind::kNone;
  e.policy = kInvalidIdx;
  e.authz_reason = 0;
  ReplyMatch r;
  if (find_reply(ctx, key, &r)) {
    e.is_reply = 1;
    e.nat = r.nat;
    e.nat_addr = r.nat_addr;
    e.nat_port = r.nat_port;
    e.service = r.service;
    ctx.ctr->reply_flows++;
    return true;
  }
  if (!s.authz) return true;  // a snapshot without an engine has no policies
  authz::Request q;
  q.src_identity = src_identity == kInvalidIdx ? authz::kNone : src_identity;
  q.src_ip = key.src_ip();
  q.dst_ip = key.dst_ip();
  q.dst_port = (key.proto == IPPROTO_TCP || key.proto == IPPROTO_UDP) ? rte_be_to_cpu_16(key.dport)
                                                                      : uint16_t(0);
  q.dst_workload = dst_workload;
  authz::Verdict v = s.authz->evaluate(q);
  ctx.ctr->authz_checks++;
  e.authz_reason = uint32_t(v.reason) + 1;
  e.policy = v.decided_by.policy.value;
  if (!v.allowed) {
    e.drop_reason = uint8_t(DropReason::kAuthzDenied);
    ctx.ctr->authz_denied_flows++;
  }
  return v.allowed;
}

void InboundAuthorize::process(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  const FlowKey* keys[kBurstSize];
  int32_t idx[kBurstSize];
  for (uint16_t i = 0; i < b.n; i++) keys[i] = &b.info[i].key;
  ctx.flows->lookup_bulk(keys, b.n, idx);

  uint16_t keep = 0;
  uint64_t hits = 0;
  bool inserted = false;  // a miss earlier in this burst may have created this packet's flow
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    bool fresh;
    int32_t fi = ctx.flows->find_or_insert(info.key, idx[i], &inserted, &fresh);
    if (fresh) ctx.ctr->flow_misses++;
    if (fi < 0) {
      ctx.drop(m, DropReason::kFlowTableFull);
      continue;
    }
    if (fresh) {
      FlowEntry& e = ctx.flows->reset(fi);
      e.created_tsc = ctx.now;
      e.service = kInvalidIdx;
      ctx.ctr->flows_created++;
    } else {
      hits++;
    }
    FlowEntry& e = ctx.flows->entry(fi);
    if (fresh || (e.generation != gen32(s.decision_generation) && !e.is_static)) {
      if (!fresh) ctx.ctr->flows_reclassified++;
      e.generation = gen32(s.decision_generation);
      const uint32_t* src = s.workload_by_ip.find(info.key.src_ip());
      e.src_workload = src ? *src : kInvalidIdx;
      e.dst_workload = info.dst_workload;
      e.identity = info.identity;
      e.node = info.node;
      e.service = kInvalidIdx;
      const uint32_t* id = s.identity_by_id.find(info.identity);
      bool ok = decide(ctx, info.key, id ? *id : kInvalidIdx, info.dst_workload, e);
      e.action = ok ? FlowAction::kDeliver : FlowAction::kDrop;
      if (e.conn <= kConnUntracked) conn_attach(ctx, info.key, e);
    }
    e.packets++;
    e.bytes += info.ip_len;
    ctx.conn_bytes[e.conn] += info.ip_len;  // istio_tcp_* bytes (conn_metrics.hpp)
    e.last_tsc = ctx.now;
    if (e.action != FlowAction::kDeliver) {
      ctx.drop(m, DropReason(e.drop_reason));
      continue;
    }
    if (e.nat == NatKind::kUnDnat) nat_rewrite_src(m, info, e.nat_addr, e.nat_port);
    b.keep(i, keep);
  }
  ctx.ctr->flow_hits += hits;
  b.n = keep;
}

}  // namespace vanish::dp
