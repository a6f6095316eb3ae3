#include "tests/support/node_pair.hpp"

#include <rte_eal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/aead.hpp"
#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"

namespace vanish::testing {

namespace {

void load_node(Node& n, const char* file, const char* name, rte_mempool* pool,
               uint32_t flow_capacity) {
  config::Config cfg;
  std::vector<std::string> errs;
  std::string path = std::string(VANISH_SOURCE_ROOT) + "/examples/" + file;
  if (!ctl::load_config(path, &cfg, &errs)) {
    std::fprintf(stderr, "node_pair: cannot load %s\n", path.c_str());
    std::abort();
  }
  std::vector<ctl::ConfigError> cerrs;
  n.snap = ctl::compile_snapshot(cfg, ctl::CompileOptions{1, 1}, nullptr, &cerrs);
  if (!n.snap) std::abort();
  n.flows = std::make_unique<dp::FlowTable>(name, flow_capacity, 0);
  n.ctx.id = 0;
  n.ctx.snap = n.snap.get();
  n.ctx.flows = n.flows.get();
  n.ctx.ctr = &n.ctr;
  n.ctx.pool = pool;
  n.ctx.imb = crypto::thread_imb_mgr();
  n.ctx.tsc_hz = rte_get_tsc_hz();
}

}  // namespace

void Node::flush() {
  for (uint16_t i = 0; i < ctx.to_local.n; i++) rte_pktmbuf_free(ctx.to_local.pkts[i]);
  for (uint16_t i = 0; i < ctx.to_fabric.n; i++) rte_pktmbuf_free(ctx.to_fabric.pkts[i]);
  ctx.to_local.n = ctx.to_fabric.n = 0;
}

Env& env(const char* config_suffix, uint32_t flow_capacity) {
  static Env* e = [config_suffix, flow_capacity] {
    std::string prefix = "--file-prefix=vanish-np-" + std::to_string(getpid());
    // Benchmarks ask for hugepages (VANISH_HUGEPAGES=1) when enough are free; tests run without.
    bool huge = false;
    if (const char* h = std::getenv("VANISH_HUGEPAGES"); h && std::string(h) == "1") {
      std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
      long free_pages = 0;
      huge = (f >> free_pages) && free_pages >= 128;
    }
    std::vector<const char*> argv = {"node_pair",         "-m", "256", "--no-pci",
                                     "--log-level=error", "-l", "0",   prefix.c_str()};
    argv.push_back(huge ? "--in-memory" : "--no-huge");
    if (rte_eal_init(int(argv.size()), const_cast<char**>(argv.data())) < 0) {
      std::fprintf(stderr, "node_pair: EAL init failed\n");
      std::abort();
    }
    auto* env = new Env;
    env->pool = rte_pktmbuf_pool_create("np_pool", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!env->pool) std::abort();
    load_node(env->a, (std::string("node-a") + config_suffix + ".textproto").c_str(), "np_flows_a",
              env->pool, flow_capacity);
    load_node(env->b, (std::string("node-b") + config_suffix + ".textproto").c_str(), "np_flows_b",
              env->pool, flow_capacity);
    return env;
  }();
  return *e;
}

rte_mbuf* make_mbuf(const uint8_t* data, size_t len) {
  if (len > 2000) return nullptr;
  rte_mbuf* m = rte_pktmbuf_alloc(env().pool);
  if (!m) return nullptr;
  char* p = rte_pktmbuf_append(m, uint16_t(len));
  if (!p) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  if (len) std::memcpy(p, data, len);  // data may be null for an empty input
  return m;
}

}  // namespace vanish::testing
