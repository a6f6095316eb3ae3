#include "dataplane/conntrack.hpp"

namespace vanish::dp {

namespace {

// One table: the owner's cached path for our own table, the shared-reader path for the others.
bool search(WorkerCtx& ctx, FlowTable* t, const FlowKey& fwd, const FlowKey& idx, ReplyMatch* r) {
  bool own = t == ctx.flows;
  int32_t p = own ? t->lookup(idx) : t->lookup_shared(idx);
  if (p >= 0) {
    const FlowEntry& e = t->entry(p);
    r->nat = NatKind::kUnDnat;
    r->nat_addr = e.nat_addr;
    r->nat_port = e.nat_port;
    r->service = e.service;
    return true;
  }
  p = own ? t->lookup(fwd) : t->lookup_shared(fwd);
  if (p >= 0) {
    const FlowEntry& e = t->entry(p);
    if (e.action == FlowAction::kEncrypt || e.action == FlowAction::kHairpin) {
      *r = ReplyMatch{};
      return true;
    }
  }
  return false;
}

}  // namespace

bool find_reply(WorkerCtx& ctx, const FlowKey& key, ReplyMatch* r) {
  FlowKey fwd = reverse_key(key);
  fwd.zone = kZoneOutbound;
  FlowKey idx = key;
  idx.zone = kZoneReplyIndex;
  if (search(ctx, ctx.flows, fwd, idx, r)) return true;
  for (unsigned w = 0; w < ctx.n_all_flows; w++) {
    FlowTable* t = ctx.all_flows[w];
    if (t && t != ctx.flows && search(ctx, t, fwd, idx, r)) return true;
  }
  return false;
}

}  // namespace vanish::dp
