#include "dataplane/ports.hpp"

#include <rte_ethdev.h>

#include <cstring>

namespace vanish::dp {

namespace {
// A symmetric Toeplitz key (repeating 0x6d5a): hash(a,b) == hash(b,a) for both directions.
uint8_t kSymmetricRssKey[40] = {0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};
}  // namespace

bool setup_port(const PortSetup& p, std::string* err) {
  if (!rte_eth_dev_is_valid_port(p.port)) {
    *err =
        "port " + std::to_string(p.port) + " does not exist (ports come from EAL: --vdev or PCI)";
    return false;
  }
  rte_eth_dev_info info;
  if (rte_eth_dev_info_get(p.port, &info) != 0) {
    *err = "port " + std::to_string(p.port) + ": cannot read device info";
    return false;
  }
  if (info.max_rx_queues < p.queues || info.max_tx_queues < p.queues) {
    *err = "port " + std::to_string(p.port) + " (" + info.driver_name + ") has " +
           std::to_string(info.max_rx_queues) + " RX / " + std::to_string(info.max_tx_queues) +
           " TX queues, " + std::to_string(p.queues) +
           " workers need one each (e.g. net_pcap: repeat rx_pcap=/tx_pcap= per queue)";
    return false;
  }
  rte_eth_conf conf{};
  if (p.queues > 1 && info.flow_type_rss_offloads) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (p.symmetric_rss && info.hash_key_size == sizeof kSymmetricRssKey) {
      conf.rx_adv_conf.rss_conf.rss_key = kSymmetricRssKey;
      conf.rx_adv_conf.rss_conf.rss_key_len = sizeof kSymmetricRssKey;
    }
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  int rc = rte_eth_dev_configure(p.port, p.queues, p.queues, &conf);
  if (rc != 0) {
    *err = "port " + std::to_string(p.port) + ": configure failed: " + rte_strerror(-rc);
    return false;
  }
  uint16_t rxd = p.rx_desc, txd = p.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(p.port, &rxd, &txd);
  int socket = rte_eth_dev_socket_id(p.port);
  if (socket < 0) socket = 0;
  for (uint16_t q = 0; q < p.queues; q++) {
    rc = rte_eth_rx_queue_setup(p.port, q, rxd, unsigned(socket), nullptr, p.pool);
    if (rc == 0) rc = rte_eth_tx_queue_setup(p.port, q, txd, unsigned(socket), nullptr);
    if (rc != 0) {
      *err = "port " + std::to_string(p.port) + " queue " + std::to_string(q) +
             ": setup failed: " + rte_strerror(-rc);
      return false;
    }
  }
  rc = rte_eth_dev_start(p.port);
  if (rc != 0) {
    *err = "port " + std::to_string(p.port) + ": start failed: " + rte_strerror(-rc);
    return false;
  }
  rte_eth_promiscuous_enable(p.port);  // virtual ports (af_packet, tap) see peers' MACs
  return true;
}

void stop_port(uint16_t port) {
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
}

std::string port_describe(uint16_t port) {
  rte_eth_dev_info info;
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  rte_eth_dev_get_name_by_port(port, name);
  if (rte_eth_dev_info_get(port, &info) != 0) return name;
  rte_ether_addr mac;
  rte_eth_macaddr_get(port, &mac);
  char macs[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(macs, sizeof macs, &mac);
  return std::string(name) + " (" + info.driver_name + ", mac " + macs + ")";
}

}  // namespace vanish::dp
