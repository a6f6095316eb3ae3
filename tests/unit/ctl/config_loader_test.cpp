// Loading configs: the examples, formats and round trips, includes, error locations, and
// decoding of Istio-shaped binary resources built from raw field numbers.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "ctl/config_loader.hpp"
#include "ctl/validate.hpp"
#include "istio/security/authorization.pb.h"
#include "istio/workload/workload.pb.h"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using google::protobuf::util::MessageDifferencer;
using test::example_path;
using test::join;
using test::load_example;
using test::raw_ip;
using test::TempDir;

bool has_error(const std::vector<std::string>& errors, const std::string& needle) {
  for (const auto& e : errors)
    if (e.find(needle) != std::string::npos) return true;
  return false;
}

// ---- the examples ----

TEST(ConfigLoader, LoadsNodeAExampleWithMeshInclude) {
  config::Config c = load_example("node-a.textproto");
  EXPECT_EQ(c.this_node(), "node-a");
  EXPECT_EQ(c.include_size(), 0);  // includes are resolved, not kept
  ASSERT_EQ(c.nodes_size(), 2);
  EXPECT_EQ(c.nodes(0).name(), "node-a");
  EXPECT_EQ(c.nodes(1).fabric_ipv4(), "172.16.0.2");
  ASSERT_EQ(c.workloads_size(), 5);
  EXPECT_EQ(c.workloads(0).name(), "sleep");
  EXPECT_EQ(c.workloads(0).addresses(0), raw_ip("10.1.0.10"));
  EXPECT_EQ(c.workloads(0).addresses(1), raw_ip("fd00:10:1::10"));
  EXPECT_EQ(c.workloads(2)
                .services()
                .at("default/httpbin.default.svc.cluster.local")
                .ports(0)
                .target_port(),
            8080u);
  EXPECT_EQ(c.workloads(2).capacity().value(), 1u);
  ASSERT_EQ(c.services_size(), 1);
  EXPECT_EQ(c.services(0).addresses(0).address(), raw_ip("10.96.0.20"));
  EXPECT_EQ(c.services(0).addresses(1).address(), raw_ip("fd00:96::20"));
  ASSERT_EQ(c.authorizations_size(), 2);
  EXPECT_EQ(c.authorizations(0).action(), istio::security::ALLOW);
  EXPECT_EQ(c.authorizations(1).action(), istio::security::DENY);
  EXPECT_EQ(c.authorizations(1).scope(), istio::security::NAMESPACE);
  ASSERT_EQ(c.static_sas_size(), 2);
  EXPECT_EQ(c.static_sas(0).spi_base(), 0xa00u);
  EXPECT_EQ(c.static_sas(1).salt_hex(), "cafebabe");
  EXPECT_EQ(c.neighbours_size(), 4);
  EXPECT_TRUE(c.ports().has_local());
  EXPECT_EQ(c.ports().fabric(), 1u);
  EXPECT_FALSE(c.fabric().ipv6());
}

TEST(ConfigLoader, EveryExampleLoadsAndValidates) {
  for (const char* name : {"node-a.textproto", "node-b.textproto", "node-a-v6fabric.textproto",
                           "node-b-v6fabric.textproto"}) {
    SCOPED_TRACE(name);
    config::Config c = load_example(name);
    std::vector<ConfigError> errors;
    std::string all;
    bool ok = validate_config(c, &errors);
    for (const auto& e : errors) all += e.str() + "\n";
    EXPECT_TRUE(ok) << all;
  }
}

TEST(ConfigLoader, V6FabricFilesOverrideTheFamilyOnly) {
  config::Config a = load_example("node-a-v6fabric.textproto");
  EXPECT_TRUE(a.fabric().ipv6());
  EXPECT_EQ(a.fabric().mtu(), 1500u);
  EXPECT_EQ(a.this_node(), "node-a");
  EXPECT_EQ(a.workloads_size(), 5);  // mesh.textproto merged once through node-a.textproto
  config::Config b = load_example("node-b-v6fabric.textproto");
  EXPECT_TRUE(b.fabric().ipv6());
  EXPECT_EQ(b.this_node(), "node-b");
}

// ---- formats ----

TEST(ConfigLoader, FormatByExtension) {
  ConfigFormat f;
  ASSERT_TRUE(format_for_path("a/b.textproto", &f));
  EXPECT_EQ(f, ConfigFormat::kText);
  ASSERT_TRUE(format_for_path("b.txtpb", &f));
  EXPECT_EQ(f, ConfigFormat::kText);
  ASSERT_TRUE(format_for_path("b.pbtxt", &f));
  EXPECT_EQ(f, ConfigFormat::kText);
  ASSERT_TRUE(format_for_path("b.json", &f));
  EXPECT_EQ(f, ConfigFormat::kJson);
  ASSERT_TRUE(format_for_path("b.pb", &f));
  EXPECT_EQ(f, ConfigFormat::kBinary);
  ASSERT_TRUE(format_for_path("b.bin", &f));
  EXPECT_EQ(f, ConfigFormat::kBinary);
  ASSERT_TRUE(format_for_path("b.binpb", &f));
  EXPECT_EQ(f, ConfigFormat::kBinary);
  EXPECT_FALSE(format_for_path("b.yaml", &f));
  EXPECT_FALSE(format_for_path("textproto", &f));
}

TEST(ConfigLoader, TextJsonBinaryRoundTripOfTheSameConfig) {
  config::Config orig = load_example("node-b.textproto");
  TempDir dir;
  for (ConfigFormat f : {ConfigFormat::kText, ConfigFormat::kJson, ConfigFormat::kBinary}) {
    SCOPED_TRACE(format_name(f));
    std::string data;
    ASSERT_TRUE(config_to_string(orig, f, &data));
    config::Config back;
    std::vector<std::string> errors;
    ASSERT_TRUE(load_config_from_string(data, f, &back, &errors)) << join(errors);
    EXPECT_TRUE(MessageDifferencer::Equals(orig, back)) << back.DebugString();

    // The same through a file whose extension selects the format.
    const char* ext = f == ConfigFormat::kText   ? "c.txtpb"
                      : f == ConfigFormat::kJson ? "c.json"
                                                 : "c.binpb";
    config::Config from_file;
    ASSERT_TRUE(load_config(dir.write(ext, data), &from_file, &errors)) << join(errors);
    EXPECT_TRUE(MessageDifferencer::Equals(orig, from_file));
  }
}

TEST(ConfigLoader, JsonUsesProtoFieldNamesAndBase64Bytes) {
  config::Config c = load_example("node-a.textproto");
  std::string json;
  ASSERT_TRUE(config_to_string(c, ConfigFormat::kJson, &json));
  EXPECT_NE(json.find("\"this_node\": \"node-a\""), std::string::npos);
  EXPECT_NE(json.find("\"CgEACg==\""), std::string::npos);  // 10.1.0.10 as base64
  // lowerCamelCase names are accepted on input too.
  config::Config back;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config_from_string(R"({"thisNode": "x", "fabric": {"mtu": 9000}})",
                                      ConfigFormat::kJson, &back, &errors))
      << join(errors);
  EXPECT_EQ(back.this_node(), "x");
  EXPECT_EQ(back.fabric().mtu(), 9000u);
}

TEST(ConfigLoader, OptionalFieldsKeepPresence) {
  config::Config c;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config_from_string("ports { fabric: 0 } static_sas { esn: false }",
                                      ConfigFormat::kText, &c, &errors));
  EXPECT_FALSE(c.ports().has_local());
  EXPECT_TRUE(c.ports().has_fabric());
  EXPECT_TRUE(c.static_sas(0).has_esn());
  EXPECT_FALSE(c.fabric().has_mtu());
}

// ---- errors ----

TEST(ConfigLoader, UnknownTextFieldNamesFileLineAndColumn) {
  TempDir dir;
  std::string p = dir.write("bad.textproto", "this_node: \"a\"\n\n  bogus_field: 1\n");
  config::Config c;
  c.set_this_node("unchanged");
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(p, &c, &errors));
  EXPECT_EQ(c.this_node(), "unchanged");
  ASSERT_FALSE(errors.empty());
  EXPECT_TRUE(has_error(errors, p + ":3:")) << join(errors);
  EXPECT_TRUE(has_error(errors, "bogus_field")) << join(errors);
}

TEST(ConfigLoader, TextSyntaxErrorHasLocation) {
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config_from_string("nodes {\n  name: \"a\"\n", ConfigFormat::kText, &c, &errors,
                                       "inline.textproto"));
  EXPECT_TRUE(has_error(errors, "inline.textproto:3:")) << join(errors);
}

TEST(ConfigLoader, UnknownJsonFieldIsAnError) {
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config_from_string(R"({"this_node": "a", "bogus": 1})", ConfigFormat::kJson, &c,
                                       &errors, "x.json"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(has_error(errors, "x.json: ")) << join(errors);
  EXPECT_TRUE(has_error(errors, "bogus")) << join(errors);
}

TEST(ConfigLoader, MalformedJsonAndBinaryAreErrors) {
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config_from_string("{\"this_node\": ", ConfigFormat::kJson, &c, &errors));
  EXPECT_FALSE(errors.empty());
  errors.clear();
  EXPECT_FALSE(load_config_from_string(std::string("\x0a\x10\x41", 3), ConfigFormat::kBinary, &c,
                                       &errors, "c.pb"));
  EXPECT_TRUE(has_error(errors, "c.pb: not a valid binary")) << join(errors);
}

TEST(ConfigLoader, MissingFileAndUnknownExtension) {
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config("/nonexistent/x.textproto", &c, &errors));
  EXPECT_TRUE(has_error(errors, "cannot open /nonexistent/x.textproto")) << join(errors);
  errors.clear();
  EXPECT_FALSE(load_config("config.yaml", &c, &errors));
  EXPECT_TRUE(has_error(errors, "unknown config file extension")) << join(errors);
}

// ---- includes ----

TEST(ConfigLoader, IncludesAreRelativeToTheIncludingFileAndMergedFirst) {
  TempDir dir;
  dir.write("sub/mesh.textproto",
            "include: \"more/nodes.json\"\n"
            "fabric { mtu: 1400 }\n"
            "nodes { name: \"n2\" }\n");
  dir.write("sub/more/nodes.json", R"({"nodes": [{"name": "n1"}], "this_node": "from-include"})");
  std::string top = dir.write("top.textproto",
                              "this_node: \"n1\"\n"
                              "include: \"sub/mesh.textproto\"\n"
                              "fabric { mtu: 9000 }\n"
                              "nodes { name: \"n3\" }\n");
  config::Config c;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config(top, &c, &errors)) << join(errors);
  EXPECT_EQ(c.this_node(), "n1");      // the including file wins for scalars
  EXPECT_EQ(c.fabric().mtu(), 9000u);  // ... and for nested scalars
  ASSERT_EQ(c.nodes_size(), 3);        // repeated fields append, includes first, depth first
  EXPECT_EQ(c.nodes(0).name(), "n1");
  EXPECT_EQ(c.nodes(1).name(), "n2");
  EXPECT_EQ(c.nodes(2).name(), "n3");
  EXPECT_EQ(c.include_size(), 0);
}

TEST(ConfigLoader, DiamondIncludeIsMergedOnce) {
  TempDir dir;
  dir.write("common.textproto", "nodes { name: \"shared\" }");
  dir.write("b.textproto", "include: \"common.textproto\" nodes { name: \"b\" }");
  dir.write("c.textproto", "include: \"./common.textproto\" nodes { name: \"c\" }");
  std::string top = dir.write("a.textproto", "include: \"b.textproto\" include: \"c.textproto\"");
  config::Config c;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config(top, &c, &errors)) << join(errors);
  ASSERT_EQ(c.nodes_size(), 3);
  EXPECT_EQ(c.nodes(0).name(), "shared");
  EXPECT_EQ(c.nodes(1).name(), "b");
  EXPECT_EQ(c.nodes(2).name(), "c");
}

TEST(ConfigLoader, IncludeCycleIsAnError) {
  TempDir dir;
  dir.write("a.textproto", "include: \"b.textproto\"");
  dir.write("b.textproto", "include: \"a.textproto\"");
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(dir.path() + "/a.textproto", &c, &errors));
  EXPECT_TRUE(has_error(errors, "include cycle")) << join(errors);
  EXPECT_TRUE(has_error(errors, "b.textproto: include[0] \"a.textproto\"")) << join(errors);
}

TEST(ConfigLoader, SelfIncludeIsACycle) {
  TempDir dir;
  std::string p = dir.write("self.textproto", "include: \"self.textproto\"");
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(p, &c, &errors));
  EXPECT_TRUE(has_error(errors, "include cycle")) << join(errors);
}

TEST(ConfigLoader, IncludeDepthIsLimited) {
  TempDir dir;
  int n = kMaxIncludeDepth + 2;
  for (int i = 0; i < n; i++)
    dir.write("f" + std::to_string(i) + ".textproto",
              i + 1 < n ? "include: \"f" + std::to_string(i + 1) + ".textproto\"" : "");
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(dir.path() + "/f0.textproto", &c, &errors));
  EXPECT_TRUE(has_error(errors, "nested deeper than")) << join(errors);

  // Exactly kMaxIncludeDepth levels of include are fine.
  std::vector<std::string> errors2;
  std::string start = "f" + std::to_string(n - 1 - kMaxIncludeDepth) + ".textproto";
  EXPECT_TRUE(load_config(dir.path() + "/" + start, &c, &errors2)) << join(errors2);
}

TEST(ConfigLoader, ErrorsInIncludedFilesNameThatFileAndTheIncludeSite) {
  TempDir dir;
  std::string inc = dir.write("inc.textproto", "nodes {\n  nmae: \"x\"\n}\n");
  std::string top =
      dir.write("top.textproto", "include: \"inc.textproto\"\ninclude: \"gone.json\"\n");
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(top, &c, &errors));
  EXPECT_TRUE(has_error(errors, inc + ":2:")) << join(errors);
  EXPECT_TRUE(has_error(errors, top + ": include[1] \"gone.json\": cannot open")) << join(errors);
}

TEST(ConfigLoader, StringIncludesResolveAgainstTheOriginDirectory) {
  TempDir dir;
  dir.write("mesh.textproto", "nodes { name: \"n\" }");
  config::Config c;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config_from_string("include: \"mesh.textproto\"", ConfigFormat::kText, &c,
                                      &errors, dir.path() + "/virtual.textproto"))
      << join(errors);
  EXPECT_EQ(c.nodes_size(), 1);
}

// ---- Istio wire compatibility: bytes built from raw field numbers ----

// Builds protobuf wire bytes from (field number, wire type) tags written by hand, so the tests
// below prove the field numbers of our .proto files, not just agree with them.
class Wire {
 public:
  Wire& varint(uint32_t field, uint64_t v) {
    with([&](auto& out) {
      out.WriteTag(field << 3 | 0);
      out.WriteVarint64(v);
    });
    return *this;
  }
  Wire& bytes(uint32_t field, const std::string& s) {
    with([&](auto& out) {
      out.WriteTag(field << 3 | 2);
      out.WriteVarint32(uint32_t(s.size()));
      out.WriteString(s);
    });
    return *this;
  }
  Wire& msg(uint32_t field, const Wire& m) { return bytes(field, m.str()); }
  Wire& packed(uint32_t field, const std::vector<uint32_t>& vs) {
    std::string body;
    {
      google::protobuf::io::StringOutputStream s(&body);
      google::protobuf::io::CodedOutputStream out(&s);
      for (uint32_t v : vs) out.WriteVarint32(v);
    }
    return bytes(field, body);
  }
  const std::string& str() const { return buf_; }

 private:
  template <typename F>
  void with(F&& f) {
    google::protobuf::io::StringOutputStream s(&buf_);
    google::protobuf::io::CodedOutputStream out(&s);
    f(out);
  }
  std::string buf_;
};

bool no_unknown_fields(const google::protobuf::Message& m) {
  const auto* refl = m.GetReflection();
  if (!refl->GetUnknownFields(m).empty()) return false;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < refl->FieldSize(m, f); i++)
        if (!no_unknown_fields(refl->GetRepeatedMessage(m, f, i))) return false;
    } else if (!no_unknown_fields(refl->GetMessage(m, f))) {
      return false;
    }
  }
  return true;
}

TEST(IstioWire, WorkloadAddressDecodesWithIstioFieldNumbers) {
  Wire port;
  port.varint(1, 80).varint(2, 8080).varint(3, 2);  // service_port, target_port, HTTP2
  Wire entry;
  entry.bytes(1, "default/httpbin.default.svc.cluster.local").msg(2, Wire().msg(1, port));
  Wire waypoint;  // GatewayAddress { address = NetworkAddress{network, address}, hbone port }
  waypoint.msg(2, Wire().bytes(1, "net1").bytes(2, raw_ip("10.9.0.1"))).varint(3, 15008);
  Wire gateway;  // GatewayAddress { hostname = NamespacedHostname{namespace, hostname} }
  gateway.msg(1, Wire().bytes(1, "istio-system").bytes(2, "eastwest.example"));
  Wire w;
  w.bytes(20, "Kubernetes//Pod/default/httpbin-1")
      .bytes(1, "httpbin-1")
      .bytes(2, "default")
      .bytes(3, raw_ip("10.2.0.20"))
      .bytes(3, raw_ip("fd00:10:2::20"))
      .bytes(21, "httpbin-1.example")
      .bytes(4, "net1")
      .varint(5, 1)  // HBONE
      .bytes(6, "cluster.local")
      .bytes(7, "httpbin")
      .msg(8, waypoint)
      .bytes(9, "node-b")
      .bytes(10, "httpbin")
      .bytes(11, "v1")
      .varint(12, 2)  // POD
      .bytes(13, "httpbin")
      .varint(14, 1)
      .bytes(16, "default/allow-httpbin")
      .varint(17, 1)  // UNHEALTHY
      .bytes(18, "Kubernetes")
      .msg(19, gateway)
      .msg(22, entry)
      .msg(23, Wire().varint(1, 1).varint(2, 15088))
      .msg(24, Wire().bytes(1, "eu").bytes(2, "eu-1a").bytes(3, "rack7"))
      .varint(25, 1)  // HOST_NETWORK
      .msg(26, Wire().bytes(1, "ext"))
      .msg(27, Wire().varint(1, 3));             // UInt32Value{value = 3}
  std::string address = Wire().msg(1, w).str();  // istio.workload.Address { workload = 1 }

  istio::workload::Address a;
  ASSERT_TRUE(a.ParseFromString(address));
  ASSERT_TRUE(a.has_workload());
  EXPECT_TRUE(no_unknown_fields(a));
  const auto& x = a.workload();
  EXPECT_EQ(x.uid(), "Kubernetes//Pod/default/httpbin-1");
  EXPECT_EQ(x.name(), "httpbin-1");
  EXPECT_EQ(x.namespace_(), "default");
  ASSERT_EQ(x.addresses_size(), 2);
  EXPECT_EQ(x.addresses(0), raw_ip("10.2.0.20"));
  EXPECT_EQ(x.addresses(1), raw_ip("fd00:10:2::20"));
  EXPECT_EQ(x.hostname(), "httpbin-1.example");
  EXPECT_EQ(x.network(), "net1");
  EXPECT_EQ(x.tunnel_protocol(), istio::workload::HBONE);
  EXPECT_EQ(x.trust_domain(), "cluster.local");
  EXPECT_EQ(x.service_account(), "httpbin");
  EXPECT_EQ(x.waypoint().address().network(), "net1");
  EXPECT_EQ(x.waypoint().address().address(), raw_ip("10.9.0.1"));
  EXPECT_EQ(x.waypoint().hbone_mtls_port(), 15008u);
  EXPECT_EQ(x.node(), "node-b");
  EXPECT_EQ(x.canonical_name(), "httpbin");
  EXPECT_EQ(x.canonical_revision(), "v1");
  EXPECT_EQ(x.workload_type(), istio::workload::POD);
  EXPECT_EQ(x.workload_name(), "httpbin");
  EXPECT_TRUE(x.native_tunnel());
  ASSERT_EQ(x.authorization_policies_size(), 1);
  EXPECT_EQ(x.authorization_policies(0), "default/allow-httpbin");
  EXPECT_EQ(x.status(), istio::workload::UNHEALTHY);
  EXPECT_EQ(x.cluster_id(), "Kubernetes");
  EXPECT_EQ(x.network_gateway().hostname().namespace_(), "istio-system");
  EXPECT_EQ(x.network_gateway().hostname().hostname(), "eastwest.example");
  const auto& pl = x.services().at("default/httpbin.default.svc.cluster.local");
  ASSERT_EQ(pl.ports_size(), 1);
  EXPECT_EQ(pl.ports(0).service_port(), 80u);
  EXPECT_EQ(pl.ports(0).target_port(), 8080u);
  EXPECT_EQ(pl.ports(0).app_protocol(), istio::workload::HTTP2);
  EXPECT_EQ(x.application_tunnel().protocol(), istio::workload::ApplicationTunnel::PROXY);
  EXPECT_EQ(x.application_tunnel().port(), 15088u);
  EXPECT_EQ(x.locality().region(), "eu");
  EXPECT_EQ(x.locality().zone(), "eu-1a");
  EXPECT_EQ(x.locality().subzone(), "rack7");
  EXPECT_EQ(x.network_mode(), istio::workload::HOST_NETWORK);
  ASSERT_EQ(x.extensions_size(), 1);
  EXPECT_EQ(x.extensions(0).name(), "ext");
  ASSERT_TRUE(x.has_capacity());
  EXPECT_EQ(x.capacity().value(), 3u);
}

TEST(IstioWire, ReservedWorkloadField15StaysUnknown) {
  istio::workload::Workload w;
  ASSERT_TRUE(w.ParseFromString(Wire().bytes(1, "n").varint(15, 1).str()));
  EXPECT_EQ(w.name(), "n");
  EXPECT_FALSE(w.GetReflection()->GetUnknownFields(w).empty());
}

TEST(IstioWire, ServiceAddressDecodesWithIstioFieldNumbers) {
  Wire s;
  s.bytes(1, "httpbin")
      .bytes(2, "default")
      .bytes(3, "httpbin.default.svc.cluster.local")
      .msg(4, Wire().bytes(1, "").bytes(2, raw_ip("10.96.0.20")))
      .msg(4, Wire().bytes(2, raw_ip("fd00:96::20")))
      .msg(5, Wire().varint(1, 80).varint(2, 8080))
      .bytes(6, "spiffe://cluster.local/ns/default/sa/httpbin")
      .msg(7, Wire().msg(1, Wire().bytes(1, "default").bytes(2, "waypoint.default")))
      .msg(8, Wire().packed(1, {4, 2}).varint(2, 2).varint(3, 1))
      .varint(9, 3)  // DUAL
      .msg(10, Wire().bytes(1, "ext"))
      .varint(11, 1)
      .varint(12, 1);
  istio::workload::Address a;
  ASSERT_TRUE(a.ParseFromString(Wire().msg(2, s).str()));
  ASSERT_TRUE(a.has_service());
  EXPECT_TRUE(no_unknown_fields(a));
  const auto& x = a.service();
  EXPECT_EQ(x.name(), "httpbin");
  EXPECT_EQ(x.namespace_(), "default");
  EXPECT_EQ(x.hostname(), "httpbin.default.svc.cluster.local");
  ASSERT_EQ(x.addresses_size(), 2);
  EXPECT_EQ(x.addresses(0).address(), raw_ip("10.96.0.20"));
  EXPECT_EQ(x.addresses(1).address(), raw_ip("fd00:96::20"));
  ASSERT_EQ(x.ports_size(), 1);
  EXPECT_EQ(x.ports(0).target_port(), 8080u);
  EXPECT_EQ(x.subject_alt_names(0), "spiffe://cluster.local/ns/default/sa/httpbin");
  EXPECT_EQ(x.waypoint().hostname().hostname(), "waypoint.default");
  ASSERT_EQ(x.load_balancing().routing_preference_size(), 2);
  EXPECT_EQ(x.load_balancing().routing_preference(0), istio::workload::LoadBalancing::NODE);
  EXPECT_EQ(x.load_balancing().mode(), istio::workload::LoadBalancing::FAILOVER);
  EXPECT_EQ(x.load_balancing().health_policy(), istio::workload::LoadBalancing::ALLOW_ALL);
  EXPECT_EQ(x.ip_families(), istio::workload::DUAL);
  EXPECT_EQ(x.extensions(0).name(), "ext");
  EXPECT_TRUE(x.canonical());
  EXPECT_TRUE(x.ingress_use_waypoint());
}

TEST(IstioWire, AuthorizationDecodesWithIstioFieldNumbers) {
  Wire m;
  m.msg(1, Wire().bytes(1, "untrusted"))                          // namespaces: exact
      .msg(2, Wire().bytes(2, "kube-"))                           // not_namespaces: prefix
      .msg(3, Wire().bytes(3, "/sa/sleep"))                       // principals: suffix
      .msg(4, Wire().msg(4, Wire()))                              // not_principals: presence
      .msg(5, Wire().bytes(1, raw_ip("10.1.0.0")).varint(2, 24))  // source_ips
      .msg(6, Wire().bytes(1, raw_ip("10.1.0.11")).varint(2, 32))
      .msg(7, Wire().bytes(1, raw_ip("fd00:10:2::")).varint(2, 64))
      .msg(8, Wire().bytes(1, raw_ip("10.2.0.21")).varint(2, 32))
      .packed(9, {5432, 8080})  // destination_ports, packed
      .varint(10, 22)           // not_destination_ports, unpacked
      .msg(11, Wire().bytes(1, "default").bytes(2, "sleep"))
      .msg(12, Wire().bytes(1, "untrusted").bytes(2, "default"))
      .msg(13, Wire().bytes(1, "ext"));
  Wire rule;
  rule.msg(1, Wire().msg(2, m));  // Rule.clauses = 1, Clause.matches = 2
  Wire az;
  az.bytes(1, "allow-sleep")
      .bytes(2, "data")
      .varint(3, 2)  // WORKLOAD_SELECTOR
      .varint(4, 1)  // DENY
      .msg(5, rule)
      .varint(6, 1)
      .msg(7, Wire().bytes(1, "ext"));

  istio::security::Authorization a;
  ASSERT_TRUE(a.ParseFromString(az.str()));
  EXPECT_TRUE(no_unknown_fields(a));
  EXPECT_EQ(a.name(), "allow-sleep");
  EXPECT_EQ(a.namespace_(), "data");
  EXPECT_EQ(a.scope(), istio::security::WORKLOAD_SELECTOR);
  EXPECT_EQ(a.action(), istio::security::DENY);
  EXPECT_TRUE(a.dry_run());
  EXPECT_EQ(a.extensions(0).name(), "ext");
  ASSERT_EQ(a.rules_size(), 1);
  ASSERT_EQ(a.rules(0).clauses_size(), 1);
  ASSERT_EQ(a.rules(0).clauses(0).matches_size(), 1);
  const auto& x = a.rules(0).clauses(0).matches(0);
  EXPECT_EQ(x.namespaces(0).exact(), "untrusted");
  EXPECT_EQ(x.not_namespaces(0).prefix(), "kube-");
  EXPECT_EQ(x.principals(0).suffix(), "/sa/sleep");
  EXPECT_TRUE(x.not_principals(0).has_presence());
  EXPECT_EQ(x.source_ips(0).address(), raw_ip("10.1.0.0"));
  EXPECT_EQ(x.source_ips(0).length(), 24u);
  EXPECT_EQ(x.not_source_ips(0).length(), 32u);
  EXPECT_EQ(x.destination_ips(0).address(), raw_ip("fd00:10:2::"));
  EXPECT_EQ(x.not_destination_ips(0).address(), raw_ip("10.2.0.21"));
  ASSERT_EQ(x.destination_ports_size(), 2);
  EXPECT_EQ(x.destination_ports(0), 5432u);
  EXPECT_EQ(x.destination_ports(1), 8080u);
  ASSERT_EQ(x.not_destination_ports_size(), 1);
  EXPECT_EQ(x.not_destination_ports(0), 22u);
  EXPECT_EQ(x.service_accounts(0).namespace_(), "default");
  EXPECT_EQ(x.service_accounts(0).service_account(), "sleep");
  EXPECT_EQ(x.not_service_accounts(0).service_account(), "default");
  EXPECT_EQ(x.extensions(0).name(), "ext");
}

TEST(IstioWire, EnumNumbers) {
  EXPECT_EQ(istio::security::GLOBAL, 0);
  EXPECT_EQ(istio::security::NAMESPACE, 1);
  EXPECT_EQ(istio::security::WORKLOAD_SELECTOR, 2);
  EXPECT_EQ(istio::security::ALLOW, 0);
  EXPECT_EQ(istio::security::DENY, 1);
  EXPECT_EQ(istio::workload::NONE, 0);
  EXPECT_EQ(istio::workload::HBONE, 1);
  EXPECT_EQ(istio::workload::LEGACY_ISTIO_MTLS, 2);
}

TEST(IstioWire, ConfigCarriesIstioResourcesUnchanged) {
  // An Istio-encoded Workload embedded in a vanish binary config (Config.workloads = 9).
  Wire w;
  w.bytes(1, "sleep").bytes(2, "default").bytes(3, raw_ip("10.1.0.10")).bytes(9, "node-a");
  config::Config c;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config_from_string(Wire().bytes(1, "node-a").msg(9, w).str(),
                                      ConfigFormat::kBinary, &c, &errors))
      << join(errors);
  EXPECT_EQ(c.this_node(), "node-a");
  ASSERT_EQ(c.workloads_size(), 1);
  EXPECT_EQ(c.workloads(0).node(), "node-a");
  EXPECT_EQ(c.workloads(0).addresses(0), raw_ip("10.1.0.10"));
}

}  // namespace
}  // namespace vanish::ctl
