#include "dataplane/host_policy.hpp"

#include <algorithm>
#include <cstring>

namespace vanish::dp {

namespace {

constexpr size_t kMaxFramed = 256 + 2;  // a name (at most 253 bytes) and its two frame bytes

struct ScanCtx {
  const HostPolicy* p;
  uint32_t ns_id;
  uint16_t port;
  uint32_t allow_pattern = kInvalidIdx;
  uint32_t deny_pattern = kInvalidIdx;
};

int on_match(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* vctx) {
  auto* c = static_cast<ScanCtx*>(vctx);
  if (id >= c->p->patterns.size()) return 0;
  const HostRuleInfo& r = c->p->rules[c->p->patterns[id].rule];
  if (!c->p->rule_applies(r, c->ns_id, c->port)) return 0;
  if (r.deny) {
    c->deny_pattern = id;
    return 1;  // a DENY decides: stop scanning
  }
  if (c->allow_pattern == kInvalidIdx || id < c->allow_pattern) c->allow_pattern = id;
  return 0;
}

}  // namespace

HostDb::~HostDb() {
  for (hs_scratch_t* s : scratch)
    if (s) hs_free_scratch(s);
  if (db) hs_free_database(db);
}

uint8_t HostPolicy::scope_flags(uint32_t ns_id, uint16_t port) const {
  uint8_t f = 0;
  uint64_t any_ns = 0, ns = uint64_t(ns_id == kInvalidIdx ? 0 : ns_id + 1) << 17;
  if (const uint8_t* x = scope.find(any_ns | port)) f |= *x;
  if (const uint8_t* x = scope.find(any_ns)) f |= *x;
  if (ns) {
    if (const uint8_t* x = scope.find(ns | port)) f |= *x;
    if (const uint8_t* x = scope.find(ns)) f |= *x;
  }
  return f;
}

bool HostPolicy::rule_applies(const HostRuleInfo& r, uint32_t ns_id, uint16_t port) const {
  if (r.ns_id != kInvalidIdx && r.ns_id != ns_id) return false;
  if (r.ports.empty()) return true;
  return std::find(r.ports.begin(), r.ports.end(), port) != r.ports.end();
}

HostDecision HostPolicy::decide(std::string_view name, uint32_t ns_id, uint16_t port,
                                hs_scratch_t* scr) const {
  HostDecision d;
  if (!name.empty() && hs && scr) {
    ScanCtx c{this, ns_id, port};
    char framed[kMaxFramed];
    const size_t n = std::min(name.size(), kMaxFramed - 2);
    framed[0] = kHostBegin;  // reversed: see ctl/egress.hpp
    for (size_t i = 0; i < n; i++) framed[1 + i] = name[n - 1 - i];
    framed[n + 1] = kHostEnd;
    hs_scan(hs->db, framed, unsigned(n + 2), 0, scr, on_match, &c);
    uint32_t pat = c.deny_pattern != kInvalidIdx ? c.deny_pattern : c.allow_pattern;
    if (pat != kInvalidIdx) {
      d.allow = c.deny_pattern == kInvalidIdx;
      d.pattern = pat;
      d.rule = patterns[pat].rule;
      return d;
    }
  }
  d.allow = allow_without_name(scope_flags(ns_id, port));
  return d;
}

}  // namespace vanish::dp
