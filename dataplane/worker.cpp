#include "dataplane/worker.hpp"

#include <rte_ethdev.h>
#include <rte_random.h>

#include <sys/prctl.h>

#include <ctime>

#include "crypto/aead.hpp"

namespace vanish::dp {

Worker::Worker(const WorkerConfig& cfg, SnapshotPublisher* pub, rte_ring* const* handoff,
               unsigned n_workers)
    : cfg_(cfg), pub_(pub) {
  // Other workers read this table (conntrack.hpp): lock-free readers guarded by the workers' RCU.
  flows_ = std::make_unique<FlowTable>("vanish_flows_" + std::to_string(cfg.id), cfg.flow_capacity,
                                       cfg.socket_id, pub->qsbr());
  ctx_.id = cfg.id;
  ctx_.flows = flows_.get();
  ctx_.ctr = &ctr_;
  conn_ = std::make_unique<ConnStats>();
  ctx_.conn = conn_.get();
  ctx_.conn_bytes = conn_->bytes();
  flows_->set_conn_stats(conn_.get());
  ctx_.pool = cfg.pool;
  ctx_.handoff = handoff;
  ctx_.n_handoff = n_workers;
  ctx_.tsc_hz = rte_get_tsc_hz();
  ctx_.rng = rte_rand() | 1;  // xorshift state must not be 0
}

Worker::~Worker() = default;

bool Worker::link_up(uint16_t port, LinkState& l) {
  const uint64_t now = rte_rdtsc();
  if (now - l.read_tsc >= ctx_.tsc_hz / 1000) {
    l.read_tsc = now;
    rte_eth_link link{};
    l.up = rte_eth_link_get_nowait(port, &link) != 0 || link.link_status == RTE_ETH_LINK_UP;
  }
  return l.up;
}

void Worker::tx(uint16_t port, TxBuffer& buf, uint64_t& pkts, uint64_t& bytes, LinkState& link) {
  if (!buf.n) return;
  uint64_t b = 0;
  for (uint16_t i = 0; i < buf.n; i++) b += rte_pktmbuf_pkt_len(buf.pkts[i]);
  uint16_t sent = rte_eth_tx_burst(port, cfg_.queue, buf.pkts, buf.n);
  // A refusing port with its link down would refuse the retries too.
  const bool up = sent == buf.n || link_up(port, link);
  for (int tries = 1; up && tries < 8 && sent < buf.n; tries++)
    sent += rte_eth_tx_burst(port, cfg_.queue, buf.pkts + sent, uint16_t(buf.n - sent));
  const DropReason why = up ? DropReason::kTxFull : DropReason::kTxLinkDown;
  for (uint16_t i = sent; i < buf.n; i++) {
    b -= rte_pktmbuf_pkt_len(buf.pkts[i]);
    ctx_.drop(buf.pkts[i], why);
  }
  pkts += sent;
  bytes += b;
  buf.n = 0;
}

uint16_t Worker::rx_bursts(uint16_t port) {
  burst_.n = rte_eth_rx_burst(port, cfg_.queue, burst_.pkts, kBurstSize);
  burst2_.n = burst_.n == kBurstSize && Pipeline::pairs_pay(ctx_)
                  ? rte_eth_rx_burst(port, cfg_.queue, burst2_.pkts, kBurstSize)
                  : 0;
  return uint16_t(burst_.n + burst2_.n);
}

void Worker::flush() {
  tx(cfg_.local_port, ctx_.to_local, ctr_.local_tx, ctr_.local_tx_bytes, local_link_);
  tx(cfg_.fabric_port, ctx_.to_fabric, ctr_.fabric_tx, ctr_.fabric_tx_bytes, fabric_link_);
}

void Worker::run(const std::atomic<bool>& stop) {
  ctx_.imb = crypto::thread_imb_mgr();
  // A sleep of the back-off ladder lasts what it asks for, not the default 50 us timer slack.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  pub_->register_worker(cfg_.id);
  running_.store(true);
  last_rx_.store(rte_rdtsc(), std::memory_order_relaxed);
  unsigned idle = 0;
  uint64_t idle_tsc = uint64_t(cfg_.flow_idle_timeout_s) * ctx_.tsc_hz;
  const uint64_t spin_tsc = uint64_t(cfg_.idle_spin_us) * ctx_.tsc_hz / 1000000;
  uint64_t last_got = ctx_.now;
  rte_ring* my_ring = ctx_.handoff ? ctx_.handoff[cfg_.id] : nullptr;

  while (!stop.load(std::memory_order_relaxed)) {
    ctx_.snap = pub_->current();
    ctx_.now = rte_rdtsc();
    unsigned got = 0;

    // A full burst and a table too big for the cache: a second burst from the same port, whose
    // flow-table misses then overlap the first's cipher work (Pipeline::outbound_pair,
    // inbound_pair).
    uint16_t n = rx_bursts(cfg_.local_port);
    got += n;
    if (burst2_.n)
      pipe_.outbound_pair(ctx_, burst_, burst2_);
    else if (n)
      pipe_.outbound(ctx_, burst_);
    n = rx_bursts(cfg_.fabric_port);
    got += n;
    if (burst2_.n)
      pipe_.inbound_pair(ctx_, burst_, burst2_, false);
    else if (n)
      pipe_.inbound(ctx_, burst_, false);
    if (my_ring) {
      n = uint16_t(rte_ring_dequeue_burst(my_ring, reinterpret_cast<void**>(burst_.pkts),
                                          kBurstSize, nullptr));
      if (n) {
        burst_.n = n;
        got += n;
        ctr_.handoff_in += n;
        pipe_.inbound(ctx_, burst_, true);
      }
    }
    flush();
    // Before quiescent: a request may read ctx_.snap (flow add classifies).
    if (mbox_.wants_service()) [[unlikely]]
      serve_mailbox(mbox_, ctx_, trace_);
    pub_->quiescent(cfg_.id);

    if (got) {
      last_rx_.store(ctx_.now, std::memory_order_relaxed);
      ctr_.busy_polls++;
      idle = 0;
      last_got = ctx_.now;
      continue;
    }
    ctr_.idle_polls++;
    if (++idle < 64 || ctx_.now - last_got < spin_tsc) {
      if (idle >= 64) idle = 63;  // the sleep ladder starts at 1 us
      rte_pause();
      continue;
    }
    // Idle: age a few flows, then sleep a growing interval (1 us .. max_idle_sleep_us) offline.
    ctr_.flows_aged += flows_->age(ctx_.now, idle_tsc, 64);
    unsigned us = std::min<unsigned>(1u << std::min(idle - 64, 16u), cfg_.max_idle_sleep_us);
    pub_->offline(cfg_.id);
    timespec ts{0, long(us) * 1000};
    nanosleep(&ts, nullptr);
    pub_->online(cfg_.id);
  }
  // Drain what others handed us, then flush.
  ctx_.snap = pub_->current();
  if (my_ring) {
    unsigned n;
    while ((n = rte_ring_dequeue_burst(my_ring, reinterpret_cast<void**>(burst_.pkts), kBurstSize,
                                       nullptr)) > 0) {
      burst_.n = uint16_t(n);
      ctr_.handoff_in += n;
      pipe_.inbound(ctx_, burst_, true);
      flush();
    }
  }
  flush();
  pub_->unregister_worker(cfg_.id);
  running_.store(false);
}

}  // namespace vanish::dp
