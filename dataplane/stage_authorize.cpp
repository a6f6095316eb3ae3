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

bool InboundAuthorize::check_source(const Snapshot& s, PacketInfo& info, uint32_t* src_workload,
                                    DropReason* why) {
  const uint32_t* src = s.workload_by_ip.find(info.key.src_ip());
  if (!src || s.workloads[*src].node.value != info.node ||
      s.workloads[*src].identity.value != info.identity) {
    *why = DropReason::kIdentitySpoof;
    return false;
  }
  // The receiving workload: the destination's waypoint when it names one (the sender steered the
  // packet there, original destination preserved; the waypoint's own traffic goes direct), else
  // the destination workload. Either must be hosted here.
  uint32_t dst_w = kInvalidIdx;
  if (s.has_waypoints) {
    uint32_t wp = s.waypoint_of(info.key.dst_ip(), info.key.dport, info.key.proto);
    if (wp != kInvalidIdx && wp != *src) dst_w = wp;
  }
  if (dst_w == kInvalidIdx) {
    const uint32_t* dst = s.workload_by_ip.find(info.key.dst_ip());
    if (dst) dst_w = *dst;
  }
  if (dst_w == kInvalidIdx || !(s.workloads[dst_w].node == s.self)) {
    *why = DropReason::kNotLocal;
    return false;
  }
  info.dst_workload = dst_w;
  *src_workload = *src;
  return true;
}

void InboundAuthorize::process(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  const uint32_t gen = gen32(s.decision_generation);
  const int32_t* idx = ctx.lookup(b);  // whole, or what WorkerCtx::lookahead_step() left
  // A hit reads line 1 only to undo a DNAT (lookup_bulk fetched line 0, which says so).
  for (uint16_t i = 0; i < b.n; i++)
    if (idx[i] >= 0 && ctx.flows->entry(idx[i]).nat == NatKind::kUnDnat)
      rte_prefetch0(&ctx.flows->entry(idx[i]).nat_addr);

  uint16_t keep = 0;
  uint64_t hits = 0;
  bool inserted = false;  // a miss earlier in this burst may have created this packet's flow
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    // The source check, once per flow: an entry this stage made (not an operator's static one)
    // under the current decision generation records the peer node and identity its first packet
    // was verified with; the same key from the same peer with the same identity passes again,
    // to the same receiving workload. Anything else (a miss, another peer or identity, an older
    // generation) is checked in full before it may touch the table.
    uint32_t src_w = kInvalidIdx;
    bool verified = false;
    if (idx[i] >= 0) {
      const FlowEntry& h = ctx.flows->entry(idx[i]);
      if (h.generation == gen && !h.is_static && h.identity == info.identity &&
          h.node == info.node) {
        info.dst_workload = h.dst_workload;
        verified = true;
      }
    }
    DropReason why;
    if (!verified && !check_source(s, info, &src_w, &why)) {
      ctx.drop(m, why);
      continue;
    }
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
    if (fresh || (e.generation != gen && !e.is_static)) {
      if (!fresh) ctx.ctr->flows_reclassified++;
      e.generation = gen;
      e.src_workload = src_w;
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
    e.touch(ctx.now);
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
