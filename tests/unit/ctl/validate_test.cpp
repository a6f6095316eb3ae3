// validate_config: every rule has a failing case whose message names resource, field and reason.
#include <gtest/gtest.h>

#include <functional>
#include <unordered_map>

#include "ctl/model.hpp"
#include "ctl/validate.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using test::raw_ip;

const config::Config& node_a() {
  static const config::Config c = test::load_example("node-a.textproto");
  return c;
}

std::string dump(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.str() + "\n";
  return s.empty() ? "  (no errors)\n" : s;
}

// Applies `mutate` to a copy of node-a's config and expects an error naming exactly `resource`
// and `field`, whose reason contains `reason`.
void expect_error(const std::function<void(config::Config&)>& mutate, const std::string& resource,
                  const std::string& field, const std::string& reason) {
  config::Config c = node_a();
  mutate(c);
  std::vector<ConfigError> errors;
  EXPECT_FALSE(validate_config(c, &errors));
  bool found = false;
  for (const auto& e : errors)
    found = found || (e.resource == resource && e.field == field &&
                      e.reason.find(reason) != std::string::npos);
  EXPECT_TRUE(found) << "wanted: " << resource << ": " << field << ": ..." << reason
                     << "...\ngot:\n"
                     << dump(errors);
}

void expect_valid(const std::function<void(config::Config&)>& mutate) {
  config::Config c = node_a();
  mutate(c);
  std::vector<ConfigError> errors;
  EXPECT_TRUE(validate_config(c, &errors)) << dump(errors);
}

config::Node* node(config::Config& c, const std::string& name) {
  for (auto& n : *c.mutable_nodes())
    if (n.name() == name) return &n;
  ADD_FAILURE() << "no node " << name;
  return c.add_nodes();
}

istio::workload::Workload* workload(config::Config& c, const std::string& name) {
  for (auto& w : *c.mutable_workloads())
    if (w.name() == name) return &w;
  ADD_FAILURE() << "no workload " << name;
  return c.add_workloads();
}

config::StaticSa* sa_ab(config::Config& c) {
  return c.mutable_static_sas(0);
}  // node-a->node-b

TEST(Validate, ExamplesAreValid) {
  expect_valid([](config::Config&) {});
}

TEST(Validate, ErrorStrNamesResourceFieldAndReason) {
  ConfigError e{"workload default/sleep", "addresses[1]", "is outside"};
  EXPECT_EQ(e.str(), "workload default/sleep: addresses[1]: is outside");
  ConfigError no_field{"config", "", "bad"};
  EXPECT_EQ(no_field.str(), "config: bad");
}

TEST(Validate, ReportsEveryProblemNotJustTheFirst) {
  config::Config c = node_a();
  c.mutable_fabric()->set_mtu(100);
  workload(c, "sleep")->set_node("nowhere");
  sa_ab(c)->set_cipher("des");
  std::vector<ConfigError> errors;
  EXPECT_FALSE(validate_config(c, &errors));
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
}

// ---- this_node and nodes ----

TEST(Validate, ThisNode) {
  expect_error([](auto& c) { c.clear_this_node(); }, "config", "this_node", "required");
  expect_error([](auto& c) { c.set_this_node("node-z"); }, "config", "this_node",
               "\"node-z\" names no node (known: node-a, node-b)");
}

TEST(Validate, NodeNames) {
  expect_error([](auto& c) { c.add_nodes()->set_name("node-b"); }, "node node-b", "name",
               "duplicate node name (also nodes[1])");
  expect_error([](auto& c) { c.add_nodes(); }, "nodes[2]", "name", "required");
}

TEST(Validate, NodeAddresses) {
  expect_error([](auto& c) { node(c, "node-a")->set_fabric_ipv4("172.16.0.300"); }, "node node-a",
               "fabric_ipv4", "\"172.16.0.300\" is not an IPv4 address");
  expect_error([](auto& c) { node(c, "node-a")->set_fabric_ipv4("fd00:16::1"); }, "node node-a",
               "fabric_ipv4", "is not an IPv4 address");
  expect_error([](auto& c) { node(c, "node-b")->set_fabric_ipv6("172.16.0.2"); }, "node node-b",
               "fabric_ipv6", "\"172.16.0.2\" is not an IPv6 address");
  expect_error([](auto& c) { node(c, "node-b")->set_gateway_ipv4("10.2.0"); }, "node node-b",
               "gateway_ipv4", "is not an IPv4 address");
  expect_error([](auto& c) { node(c, "node-b")->set_gateway_ipv6("fd00::zz"); }, "node node-b",
               "gateway_ipv6", "is not an IPv6 address");
  expect_error([](auto& c) { node(c, "node-b")->set_fabric_ipv4("0.0.0.0"); }, "node node-b",
               "fabric_ipv4", "unspecified");
}

TEST(Validate, NodeMacs) {
  expect_error([](auto& c) { node(c, "node-a")->set_fabric_mac("02:00:00:00:16"); }, "node node-a",
               "fabric_mac", "is not a MAC address");
  expect_error([](auto& c) { node(c, "node-a")->set_local_mac("02-00-00-00-10-01"); },
               "node node-a", "local_mac", "is not a MAC address");
  expect_error([](auto& c) { node(c, "node-a")->set_local_mac("01:00:5e:00:00:01"); },
               "node node-a", "local_mac", "is a multicast MAC");
  expect_error([](auto& c) { node(c, "node-b")->set_fabric_mac("00:00:00:00:00:00"); },
               "node node-b", "fabric_mac", "all-zero");
}

TEST(Validate, NodePrefixes) {
  expect_error([](auto& c) { node(c, "node-a")->set_workload_prefixes(0, "10.1.0.0"); },
               "node node-a", "workload_prefixes[0]", "is not a CIDR");
  expect_error([](auto& c) { node(c, "node-a")->set_workload_prefixes(0, "10.1.0.5/24"); },
               "node node-a", "workload_prefixes[0]",
               "\"10.1.0.5/24\" has host bits set (did you mean 10.1.0.0/24?)");
  expect_error([](auto& c) { node(c, "node-a")->set_workload_prefixes(1, "fd00:10:1::/129"); },
               "node node-a", "workload_prefixes[1]", "prefix length must be 0..128");
  expect_error([](auto& c) { node(c, "node-a")->set_workload_prefixes(0, "10.1.x.0/24"); },
               "node node-a", "workload_prefixes[0]", "is not an IP address");
  expect_error([](auto& c) { node(c, "node-b")->add_workload_prefixes("10.0.0.0/8"); },
               "node node-b", "workload_prefixes", "10.0.0.0/8 overlaps node node-a's 10.1.0.0/24");
}

TEST(Validate, NodeSpiffeIdAndManagementAddress) {
  expect_error([](auto& c) { node(c, "node-a")->set_spiffe_id("cluster.local/ns/x/sa/y"); },
               "node node-a", "spiffe_id", "is not a SPIFFE id");
  expect_error([](auto& c) { node(c, "node-a")->set_management_address("172.16.0.1"); },
               "node node-a", "management_address", "is not host:port");
  expect_error([](auto& c) { node(c, "node-a")->set_management_address("fd00:16::1:443"); },
               "node node-a", "management_address", "IPv6 as [addr]:port");
  expect_error([](auto& c) { node(c, "node-a")->set_management_address("h:70000"); }, "node node-a",
               "management_address", "port 1..65535");
  expect_valid([](auto& c) { node(c, "node-a")->set_management_address("[fd00:16::1]:15443"); });
}

// node-a with a peering block and without static SAs.
void peered(config::Config& c) {
  c.clear_static_sas();
  config::Peering* p = c.mutable_peering();
  p->set_cert_file("certs/node-a/cert.pem");
  p->set_key_file("certs/node-a/key.pem");
  p->set_bundle_file("certs/node-a/bundle.pem");
}

TEST(Validate, Peering) {
  expect_valid([](auto& c) { peered(c); });
  expect_error([](auto& c) { peered(c), c.mutable_peering()->clear_cert_file(); }, "peering",
               "cert_file", "required");
  expect_error([](auto& c) { peered(c), c.mutable_peering()->clear_bundle_file(); }, "peering",
               "bundle_file", "required");
  expect_error([](auto& c) { peered(c), c.mutable_peering()->set_cipher("chacha"); }, "peering",
               "cipher", "is not aes-128-gcm or aes-256-gcm");
  expect_error([](auto& c) { peered(c), c.mutable_peering()->set_rekey_packets(3); }, "peering",
               "rekey_packets", "at least 16");
  expect_error([](auto& c) { peered(c), c.mutable_peering()->set_handshake_timeout_ms(1); },
               "peering", "handshake_timeout_ms", "10..60000");
  expect_error([](auto& c) { peered(c), c.mutable_peering()->set_listen_address("nope"); },
               "peering", "management_address", "is not host:port");
  // A peered node may not also have static SAs with this node.
  expect_error(
      [](auto& c) {
        config::Config orig = node_a();
        peered(c);
        *c.add_static_sas() = orig.static_sas(0);
      },
      "static_sa node-a->node-b", "to_node", "node node-b is peered");
  expect_error([](auto& c) { peered(c), node(c, "node-a")->clear_spiffe_id(); }, "node node-a",
               "spiffe_id", "required with peering");
  expect_error(
      [](auto& c) {
        peered(c);
        node(c, "node-a")->clear_management_address();
      },
      "node node-a", "management_address", "required with peering");
  expect_valid([](auto& c) {
    peered(c);
    node(c, "node-a")->clear_management_address();
    c.mutable_peering()->set_listen_address("127.0.0.1:15443");
  });
  expect_error(
      [](auto& c) {
        peered(c);
        node(c, "node-b")->set_spiffe_id("spiffe://other.domain/ns/vanish-system/sa/node-b");
      },
      "node node-b", "spiffe_id", "differs from");
  expect_error(
      [](auto& c) {
        peered(c);
        node(c, "node-b")->set_spiffe_id(node(c, "node-a")->spiffe_id());
      },
      "node node-b", "spiffe_id", "also the id of node node-a");
}

TEST(Validate, ThisNodeNeedsAFabricAddressOfItsFamily) {
  expect_error(
      [](auto& c) {
        c.mutable_fabric()->set_ipv6(true);
        node(c, "node-a")->clear_fabric_ipv6();
      },
      "node node-a", "fabric_ipv6", "required on this node: the fabric is IPv6");
  expect_error([](auto& c) { node(c, "node-a")->clear_fabric_ipv4(); }, "node node-a",
               "fabric_ipv4", "required on this node: the fabric is IPv4");
}

// ---- ports, fabric, limits ----

TEST(Validate, Ports) {
  expect_error([](auto& c) { c.mutable_ports()->set_fabric(0); }, "ports", "fabric",
               "same DPDK port as local (0)");
  expect_error(
      [](auto& c) {
        c.mutable_ports()->clear_local();
        c.mutable_ports()->clear_fabric();
        c.mutable_ports()->set_local(1);  // default fabric port is 1 as well
      },
      "ports", "fabric", "same DPDK port as local (1)");
  expect_error([](auto& c) { c.mutable_ports()->set_local(5000); }, "ports", "local",
               "5000 is not a DPDK port id");
}

TEST(Validate, FabricMtu) {
  expect_error([](auto& c) { c.mutable_fabric()->set_mtu(575); }, "fabric", "mtu",
               "575 is outside 576..9216 (IPv4 fabric)");
  expect_error([](auto& c) { c.mutable_fabric()->set_mtu(9217); }, "fabric", "mtu",
               "9217 is outside 576..9216");
  expect_error(
      [](auto& c) {
        c.mutable_fabric()->set_ipv6(true);
        c.mutable_fabric()->set_mtu(1279);
      },
      "fabric", "mtu", "1279 is outside 1280..9216 (IPv6 fabric)");
  expect_error([](auto& c) { c.mutable_fabric()->set_mtu(0); }, "fabric", "mtu", "0 is outside");
  expect_valid([](auto& c) { c.mutable_fabric()->set_mtu(576); });
  expect_valid([](auto& c) { c.mutable_fabric()->clear_mtu(); });  // default 1500
}

TEST(Validate, Limits) {
  expect_error([](auto& c) { c.mutable_limits()->set_flows_per_worker(1); }, "limits",
               "flows_per_worker", "1 is outside 64..16777216");
  expect_error([](auto& c) { c.mutable_limits()->set_mbufs(10); }, "limits", "mbufs",
               "is outside 1023..");
  expect_error([](auto& c) { c.mutable_limits()->set_rx_ring(1); }, "limits", "rx_ring",
               "is outside");
  expect_error([](auto& c) { c.mutable_limits()->set_tx_ring(100000); }, "limits", "tx_ring",
               "is outside");
  expect_error([](auto& c) { c.mutable_limits()->set_handoff_ring(1000); }, "limits",
               "handoff_ring", "1000 is not a power of two");
  expect_error([](auto& c) { c.mutable_limits()->set_mbuf_cache(600); }, "limits", "mbuf_cache",
               "600 is outside 0..512");
  ResolvedLimits d = resolve_limits(config::Limits{});
  EXPECT_EQ(d.flows_per_worker, 262144u);
  EXPECT_EQ(d.mbufs, 16383u);
}

// ---- workloads ----

TEST(Validate, WorkloadNameNamespaceAndDuplicates) {
  expect_error([](auto& c) { workload(c, "sleep")->clear_name(); }, "workloads[0]", "name",
               "required");
  expect_error([](auto& c) { workload(c, "sleep")->clear_namespace_(); }, "workload /sleep",
               "namespace", "required");
  expect_error(
      [](auto& c) {
        auto* w = c.add_workloads();
        w->set_name("sleep");
        w->set_namespace_("default");
        w->set_node("node-a");
      },
      "workload default/sleep", "name", "duplicate workload (also workloads[0])");
  expect_error([](auto& c) { workload(c, "postgres")->set_uid("Kubernetes//Pod/default/sleep"); },
               "workload data/postgres", "uid",
               "\"Kubernetes//Pod/default/sleep\" is also the uid of workload default/sleep");
}

TEST(Validate, WorkloadNode) {
  expect_error([](auto& c) { workload(c, "sleep")->set_node("node-z"); }, "workload default/sleep",
               "node", "\"node-z\" names no node (known: node-a, node-b)");
  expect_error([](auto& c) { workload(c, "sleep")->clear_node(); }, "workload default/sleep",
               "node", "required");
}

TEST(Validate, WorkloadAddresses) {
  expect_error([](auto& c) { workload(c, "sleep")->set_addresses(1, std::string(5, '\x0a')); },
               "workload default/sleep", "addresses[1]", "must be 4 or 16 octets, got 5");
  expect_error([](auto& c) { workload(c, "curl-untrusted")->add_addresses(raw_ip("10.1.0.10")); },
               "workload untrusted/curl-untrusted", "addresses[2]",
               "10.1.0.10 is also an address of workload default/sleep");
  expect_error([](auto& c) { workload(c, "sleep")->add_addresses(raw_ip("fd00:10:1::10")); },
               "workload default/sleep", "addresses[2]", "fd00:10:1::10 is listed twice");
  expect_error([](auto& c) { workload(c, "sleep")->set_addresses(0, raw_ip("10.2.0.99")); },
               "workload default/sleep", "addresses[0]",
               "10.2.0.99 is outside node node-a's workload_prefixes (10.1.0.0/24, "
               "fd00:10:1::/64)");
  expect_error([](auto& c) { workload(c, "postgres")->set_addresses(1, raw_ip("fd00:10:3::30")); },
               "workload data/postgres", "addresses[1]", "is outside node node-b's");
}

TEST(Validate, WorkloadIdentityParts) {
  // Defaults: an empty trust domain / service account is fine (cluster.local / default).
  expect_valid([](auto& c) {
    workload(c, "sleep")->clear_trust_domain();
    workload(c, "sleep")->clear_service_account();
  });
  expect_error([](auto& c) { workload(c, "sleep")->set_trust_domain("a/b"); },
               "workload default/sleep", "trust_domain", "must not contain '/'");
  expect_error([](auto& c) { workload(c, "sleep")->set_service_account("x/y"); },
               "workload default/sleep", "service_account", "must not contain '/'");
  expect_error([](auto& c) { workload(c, "sleep")->set_namespace_("a/b"); }, "workload a/b/sleep",
               "namespace", "must not contain '/'");
}

TEST(Validate, WorkloadServicesMap) {
  expect_error(
      [](auto& c) {
        (*workload(c, "sleep")->mutable_services())["httpbin"].add_ports()->set_service_port(80);
      },
      "workload default/sleep", "services[\"httpbin\"]", "key must be \"namespace/hostname\"");
  expect_error(
      [](auto& c) {
        auto& pl = (*workload(c, "sleep")->mutable_services())["default/x"];
        pl.add_ports()->set_service_port(0);
      },
      "workload default/sleep", "services[\"default/x\"].ports[0].service_port",
      "0 is outside 1..65535");
  expect_error(
      [](auto& c) {
        auto* p = (*workload(c, "sleep")->mutable_services())["default/x"].add_ports();
        p->set_service_port(80);
        p->set_target_port(65536);
      },
      "workload default/sleep", "services[\"default/x\"].ports[0].target_port",
      "65536 is outside 0..65535");
}

TEST(Validate, IdentityIdIsSha256Prefix) {
  // Pinned: first 4 bytes of SHA-256("cluster.local/ns/default/sa/sleep") = 1871fdbe.
  EXPECT_EQ(identity_id_for("cluster.local/ns/default/sa/sleep").value, 0x1871fdbeu);
  EXPECT_EQ(identity_id_for("cluster.local/ns/data/sa/postgres").value, 0xe74a56efu);
  istio::workload::Workload w;
  w.set_namespace_("default");
  EXPECT_EQ(workload_principal(w), "cluster.local/ns/default/sa/default");
}

TEST(Validate, IdentityIdCollisionRejectsTheConfig) {
  // Birthday search for two service accounts whose principals share a 32-bit id.
  std::unordered_map<uint32_t, int> seen;
  int a = -1, b = -1;
  for (int i = 0; i < 2000000 && a < 0; i++) {
    uint32_t id = identity_id_for("cluster.local/ns/default/sa/sa-" + std::to_string(i)).value;
    auto [it, fresh] = seen.emplace(id, i);
    if (!fresh) a = it->second, b = i;
  }
  ASSERT_GE(a, 0);
  std::string principal_a = "cluster.local/ns/default/sa/sa-" + std::to_string(a);
  expect_error(
      [&](auto& c) {
        int n = 50;
        for (int sa : {a, b}) {
          auto* w = c.add_workloads();
          w->set_name("w" + std::to_string(sa));
          w->set_namespace_("default");
          w->set_service_account("sa-" + std::to_string(sa));
          w->set_node("node-a");
          w->add_addresses(raw_ip("10.1.0." + std::to_string(n++)));
        }
      },
      "workload default/w" + std::to_string(b), "service_account",
      "collides with principal \"" + principal_a + "\"");
}

// ---- services ----

TEST(Validate, Services) {
  expect_error([](auto& c) { c.mutable_services(0)->clear_hostname(); }, "services[0]", "hostname",
               "required");
  expect_error([](auto& c) { c.mutable_services(0)->clear_namespace_(); },
               "service /httpbin.default.svc.cluster.local", "namespace", "required");
  expect_error([](auto& c) { c.mutable_services(0)->mutable_addresses(1)->set_address("abc"); },
               "service default/httpbin.default.svc.cluster.local", "addresses[1].address",
               "must be 4 or 16 octets, got 3");
  expect_error([](auto& c) { c.mutable_services(0)->mutable_ports(0)->set_service_port(0); },
               "service default/httpbin.default.svc.cluster.local", "ports[0].service_port",
               "0 is outside 1..65535");
  expect_error([](auto& c) { c.mutable_services(0)->mutable_ports(0)->set_service_port(65536); },
               "service default/httpbin.default.svc.cluster.local", "ports[0].service_port",
               "65536 is outside 1..65535");
  expect_error([](auto& c) { c.mutable_services(0)->mutable_ports(0)->set_target_port(70000); },
               "service default/httpbin.default.svc.cluster.local", "ports[0].target_port",
               "70000 is outside 0..65535");
  expect_error([](auto& c) { *c.add_services() = c.services(0); },
               "service default/httpbin.default.svc.cluster.local", "hostname",
               "duplicate service (also services[0])");
}

// ---- static SAs ----

TEST(Validate, StaticSaNodes) {
  expect_error([](auto& c) { sa_ab(c)->set_from_node("node-z"); }, "static_sa node-z->node-b",
               "from_node", "\"node-z\" names no node");
  expect_error([](auto& c) { sa_ab(c)->set_to_node("node-z"); }, "static_sa node-a->node-z",
               "to_node", "\"node-z\" names no node");
  expect_error([](auto& c) { sa_ab(c)->clear_to_node(); }, "static_sas[0]", "to_node", "required");
  expect_error([](auto& c) { sa_ab(c)->clear_from_node(); }, "static_sas[0]", "from_node",
               "required");
  expect_error([](auto& c) { sa_ab(c)->set_to_node("node-a"); }, "static_sa node-a->node-a",
               "to_node", "from_node and to_node are both \"node-a\"");
  expect_error(
      [](auto& c) {
        auto* s = c.add_static_sas();
        *s = c.static_sas(0);
        s->set_spi_base(0x1000);
      },
      "static_sa node-a->node-b", "to_node",
      "a second static SA for the same direction (also static_sas[0])");
  expect_error([](auto& c) { node(c, "node-b")->clear_fabric_ipv4(); }, "static_sa node-a->node-b",
               "to_node", "node node-b has no fabric_ipv4 (this node's fabric is IPv4)");
}

TEST(Validate, StaticSaCipherKeySalt) {
  expect_error([](auto& c) { sa_ab(c)->set_cipher("aes-128-cbc"); }, "static_sa node-a->node-b",
               "cipher", "unknown cipher \"aes-128-cbc\" (aes-128-gcm, aes-192-gcm, aes-256-gcm)");
  expect_error([](auto& c) { sa_ab(c)->clear_cipher(); }, "static_sa node-a->node-b", "cipher",
               "required");
  expect_error([](auto& c) { sa_ab(c)->set_cipher("aes-256-gcm"); }, "static_sa node-a->node-b",
               "key_hex", "32 bytes needed for aes-256-gcm, got 16");
  expect_error([](auto& c) { sa_ab(c)->set_key_hex("2b7e151628aed2a6abf7158809cf4f"); },
               "static_sa node-a->node-b", "key_hex", "16 bytes needed for aes-128-gcm, got 15");
  expect_error([](auto& c) { sa_ab(c)->set_key_hex("zz7e151628aed2a6abf7158809cf4f3c"); },
               "static_sa node-a->node-b", "key_hex", "not an even-length hex string");
  expect_error([](auto& c) { sa_ab(c)->set_salt_hex("deadbe"); }, "static_sa node-a->node-b",
               "salt_hex", "4 bytes needed, got 3");
  expect_error([](auto& c) { sa_ab(c)->set_salt_hex("deadbeefx"); }, "static_sa node-a->node-b",
               "salt_hex", "not an even-length hex string");
  expect_valid([](auto& c) {
    sa_ab(c)->set_cipher("AES-256-GCM");
    sa_ab(c)->set_key_hex("0x" + std::string(64, 'a'));
  });
}

TEST(Validate, StaticSaSpis) {
  expect_error([](auto& c) { sa_ab(c)->set_spi_base(0); }, "static_sa node-a->node-b", "spi_base",
               "SPI 0 is reserved");
  expect_error([](auto& c) { sa_ab(c)->set_spi_base(255); }, "static_sa node-a->node-b", "spi_base",
               "SPIs 1..255 are reserved (RFC 4303); got 255");
  expect_error([](auto& c) { sa_ab(c)->set_spi_base(0xfffffff5); }, "static_sa node-a->node-b",
               "spi_base", "exceeds the SPI space");
  expect_valid([](auto& c) { sa_ab(c)->set_spi_base(256); });
  expect_valid([](auto& c) { sa_ab(c)->set_spi_base(0xfffffff0); });
  // Overlap is per receiving node: node-c -> node-b may not reuse 0xa00..0xa0f ...
  auto add_node_c = [](config::Config& c) {
    auto* n = c.add_nodes();
    n->set_name("node-c");
    n->set_fabric_ipv4("172.16.0.3");
  };
  expect_error(
      [&](auto& c) {
        add_node_c(c);
        auto* s = c.add_static_sas();
        *s = c.static_sas(0);
        s->set_from_node("node-c");
        s->set_spi_base(0xa0f);
      },
      "static_sa node-c->node-b", "spi_base",
      "SPIs 0x00000a0f..0x00000a1e overlap static_sa node-a->node-b's 0x00000a00..0x00000a0f at "
      "receiver node-b");
  // ... but node-b -> node-a may use the same SPIs as node-a -> node-b.
  expect_valid([](auto& c) { c.mutable_static_sas(1)->set_spi_base(0xa00); });
  expect_valid([&](auto& c) {
    add_node_c(c);
    auto* s = c.add_static_sas();
    *s = c.static_sas(0);
    s->set_from_node("node-c");
    s->set_spi_base(0xa10);
  });
}

TEST(Validate, StaticSaPortsAndWindow) {
  expect_error([](auto& c) { sa_ab(c)->set_udp_sport_base(80); }, "static_sa node-a->node-b",
               "udp_sport_base", "80 is outside 1024..65520");
  expect_error([](auto& c) { sa_ab(c)->set_udp_sport_base(65530); }, "static_sa node-a->node-b",
               "udp_sport_base", "is outside 1024..65520");
  expect_error([](auto& c) { sa_ab(c)->set_replay_window(32); }, "static_sa node-a->node-b",
               "replay_window", "32 is outside 64..1048576");
  expect_valid([](auto& c) { sa_ab(c)->set_udp_sport_base(65520); });
  // 0 = anti-replay off, only with ESN explicitly off (ESN is inferred from the window).
  expect_error([](auto& c) { sa_ab(c)->set_replay_window(0); }, "static_sa node-a->node-b",
               "replay_window", "0 (anti-replay off) needs esn: false");
  expect_error(
      [](auto& c) {
        sa_ab(c)->set_replay_window(0);
        sa_ab(c)->set_esn(true);
      },
      "static_sa node-a->node-b", "replay_window", "needs esn: false");
  expect_valid([](auto& c) {
    sa_ab(c)->set_replay_window(0);
    sa_ab(c)->set_esn(false);
  });
}

// ---- neighbours ----

TEST(Validate, Neighbours) {
  auto add = [](config::Config& c, const std::string& addr, const std::string& mac) {
    auto* n = c.add_neighbours();
    n->set_address(addr);
    n->set_mac(mac);
  };
  expect_error([&](auto& c) { add(c, "10.1.0.x", "02:00:00:aa:00:99"); }, "neighbour 10.1.0.x",
               "address", "\"10.1.0.x\" is not an IP address");
  expect_error([&](auto& c) { add(c, "10.1.0.99", "02:00:00:aa:00:99"); }, "neighbour 10.1.0.99",
               "address", "10.1.0.99 is not an address of any workload");
  expect_error([&](auto& c) { add(c, "10.2.0.20", "02:00:00:aa:00:20"); }, "neighbour 10.2.0.20",
               "address",
               "10.2.0.20 belongs to workload default/httpbin-1 on node node-b, not on this node "
               "(node-a)");
  expect_error([&](auto& c) { add(c, "10.1.0.10", "02:00:00:aa:00:10"); }, "neighbour 10.1.0.10",
               "address", "listed twice (also neighbours[0])");
  expect_error([&](auto& c) { c.mutable_neighbours(1)->set_mac("02:00:00:aa:00:77"); },
               "neighbour fd00:10:1::10", "mac",
               "02:00:00:aa:00:77 differs from 02:00:00:aa:00:10 (neighbours[0]) for the same "
               "workload default/sleep");
  expect_error([&](auto& c) { c.mutable_neighbours(0)->set_mac("02:00:00:aa:00"); },
               "neighbour 10.1.0.10", "mac", "is not a MAC address");
  expect_error([&](auto& c) { c.mutable_neighbours(0)->set_mac("ff:ff:ff:ff:ff:ff"); },
               "neighbour 10.1.0.10", "mac", "is not a unicast MAC");
  expect_error([&](auto& c) { c.mutable_neighbours(0)->clear_mac(); }, "neighbour 10.1.0.10", "mac",
               "required");
  expect_error([&](auto& c) { c.mutable_neighbours(0)->clear_address(); }, "neighbours[0]",
               "address", "required");
}

}  // namespace
}  // namespace vanish::ctl

namespace vanish::ctl {
namespace {

istio::workload::Service* httpbin_service(config::Config& c) {
  for (auto& s : *c.mutable_services())
    if (s.hostname() == "httpbin.default.svc.cluster.local") return &s;
  ADD_FAILURE() << "no httpbin service";
  return c.add_services();
}

TEST(ValidateServices, EndpointsVipsAndWaypoints) {
  const std::string svc = "service default/httpbin.default.svc.cluster.local";
  // A service nobody names has no endpoints.
  expect_error(
      [](config::Config& c) {
        for (auto& w : *c.mutable_workloads()) w.mutable_services()->clear();
      },
      svc, "endpoints", "needs endpoints");
  // A workload naming an unknown service.
  expect_error(
      [](config::Config& c) {
        for (auto& w : *c.mutable_workloads())
          if (w.name() == "postgres") (*w.mutable_services())["data/nope.svc"];
      },
      "workload data/postgres", "services[\"data/nope.svc\"]", "names no service");
  // A VIP that is a workload's address, a VIP:port shared by two services, no VIP, no port.
  expect_error(
      [](config::Config& c) {
        httpbin_service(c)->mutable_addresses(0)->set_address(raw_ip("10.2.0.30"));
      },
      svc, "addresses[0].address", "is also an address of workloads[4]");
  expect_error(
      [](config::Config& c) {
        auto* s2 = c.add_services();
        *s2 = *httpbin_service(c);
        s2->set_hostname("other.default.svc.cluster.local");
        for (auto& w : *c.mutable_workloads())
          if (w.name() == "postgres")
            (*w.mutable_services())["default/other.default.svc.cluster.local"];
      },
      "service default/other.default.svc.cluster.local", "addresses[0].address",
      "10.96.0.20:80 is also a VIP:port of services[0]");
  expect_error([](config::Config& c) { httpbin_service(c)->clear_addresses(); }, svc, "addresses",
               "at least one VIP");
  expect_error([](config::Config& c) { httpbin_service(c)->clear_ports(); }, svc, "ports",
               "at least one port");
  // Waypoints must name a workload address or a service.
  expect_error(
      [](config::Config& c) {
        httpbin_service(c)->mutable_waypoint()->mutable_hostname()->set_hostname("wp");
      },
      svc, "waypoint.hostname", "names no service");
  expect_error(
      [](config::Config& c) {
        for (auto& w : *c.mutable_workloads())
          if (w.name() == "postgres")
            w.mutable_waypoint()->mutable_address()->set_address(raw_ip("10.9.9.9"));
      },
      "workload data/postgres", "waypoint.address.address", "is no workload's address");
  expect_valid([](config::Config& c) {
    for (auto& w : *c.mutable_workloads())
      if (w.name() == "postgres")
        w.mutable_waypoint()->mutable_address()->set_address(raw_ip("10.2.0.21"));
  });
}

}  // namespace
}  // namespace vanish::ctl
