// LiveConfig: apply / reject / dry run against the served snapshot, file reloads through the
// watch, and the control-socket handler end to end (client -> server -> LiveConfig). No DPDK: the
// "publisher" is a unique_ptr.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ctl/control_client.hpp"
#include "ctl/live_config.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

class Live : public ::testing::Test {
 protected:
  void start(const std::string& path, bool watch, const std::string& socket = "") {
    std::vector<std::string> errors, files;
    ASSERT_TRUE(load_config(path, &cfg_, &errors, &files)) << test::join(errors);
    std::vector<ConfigError> cerrs;
    snap_ = compile_snapshot(cfg_, CompileOptions{2, 1}, nullptr, &cerrs);
    ASSERT_TRUE(snap_);
    LiveConfigOptions o;
    o.config_path = path;
    o.compile = CompileOptions{2, 0};
    o.watch = watch;
    o.watch_interval = 10ms;
    o.socket.path = socket;
    live_ = std::make_unique<LiveConfig>(
        o, cfg_, files, [this] { return snap_.get(); },
        [this](std::unique_ptr<dp::Snapshot> s, bool config_change) {
          published_++;
          config_changes_ += config_change;
          snap_ = std::move(s);
        },
        [this](bool error, const std::string& line) {
          log_ += (error ? "E " : "I ") + line + "\n";
        });
    std::string err;
    ASSERT_TRUE(live_->open_socket(&err)) << err;
  }
  uint64_t generation() const { return snap_->generation; }
  // Polls until the generation is `want` or 3 s passed.
  bool poll_until_generation(uint64_t want) {
    for (int i = 0; i < 600 && generation() != want; i++) {
      live_->poll();
      std::this_thread::sleep_for(5ms);
    }
    return generation() == want;
  }

  config::Config cfg_;
  std::unique_ptr<dp::Snapshot> snap_;
  std::unique_ptr<LiveConfig> live_;
  int published_ = 0;
  int config_changes_ = 0;  // publishes flagged as an applied config (not a republish)
  std::string log_;
};

config::Config with_extra_workload(config::Config c, const std::string& node) {
  auto* w = c.add_workloads();
  *w = c.workloads(c.workloads_size() - 2);
  w->set_uid("extra");
  w->set_name("extra");
  w->set_namespace_("default");
  w->set_node(node);
  w->clear_addresses();
  w->add_addresses(test::raw_ip(node == "node-b" ? "10.2.0.99" : "10.9.0.99"));
  return c;
}

TEST_F(Live, AppliesAValidConfigAsTheNextGeneration) {
  start(test::example_path("node-b.textproto"), false);
  config::Config next = with_extra_workload(cfg_, "node-b");
  auto r = live_->apply(next, false);
  ASSERT_TRUE(r.ok) << log_;
  EXPECT_EQ(r.generation, 2u);
  EXPECT_EQ(generation(), 2u);
  EXPECT_EQ(published_, 1);
  EXPECT_EQ(snap_->workloads.size(), size_t(next.workloads_size()));
  EXPECT_EQ(live_->config().workloads_size(), next.workloads_size());
  EXPECT_NE(log_.find("I vanishd: config generation 2 applied (6 workloads, 1 services, 2 "
                      "policies) in "),
            std::string::npos)
      << log_;
}

// A reload that turns anti-replay off on an SA this node receives says so, every time it is
// served; a dry run and an SA this node only sends do not.
TEST_F(Live, AntiReplayOffIsWarnedOnReload) {
  start(test::example_path("node-b.textproto"), false);
  config::Config next = cfg_;
  config::StaticSa* to_b = nullptr;
  config::StaticSa* from_b = nullptr;
  for (auto& sa : *next.mutable_static_sas()) (sa.to_node() == "node-b" ? to_b : from_b) = &sa;
  ASSERT_TRUE(to_b && from_b);
  from_b->set_esn(false);
  from_b->set_replay_window(0);  // received by node-a: nothing to say here
  ASSERT_TRUE(live_->apply(next, false).ok) << log_;
  EXPECT_EQ(log_.find("anti-replay off"), std::string::npos) << log_;
  to_b->set_esn(false);
  to_b->set_replay_window(0);
  ASSERT_TRUE(live_->apply(next, true).ok) << log_;  // dry run
  EXPECT_EQ(log_.find("anti-replay off"), std::string::npos) << log_;
  ASSERT_TRUE(live_->apply(next, false).ok) << log_;
  EXPECT_NE(log_.find("E vanishd: warning: static_sa node-a->node-b: anti-replay off "
                      "(replay_window: 0): replayed ESP packets are accepted"),
            std::string::npos)
      << log_;
  EXPECT_FALSE(snap_->sa_in.find(to_b->spi_base())->sa->anti_replay());
}

// republish() (after SAs changed) is a new generation with the same decision generation;
// apply() always starts a new one.
TEST_F(Live, RepublishKeepsTheDecisionGeneration) {
  start(test::example_path("node-b.textproto"), false);
  auto r = live_->republish();
  ASSERT_TRUE(r.ok) << log_;
  EXPECT_EQ(r.generation, 2u);
  EXPECT_EQ(snap_->generation, 2u);
  EXPECT_EQ(snap_->decision_generation, 1u);
  ASSERT_TRUE(live_->apply(cfg_, false).ok) << log_;
  EXPECT_EQ(snap_->generation, 3u);
  EXPECT_EQ(snap_->decision_generation, 3u);
  ASSERT_TRUE(live_->republish().ok) << log_;
  EXPECT_EQ(snap_->decision_generation, 3u);
  EXPECT_EQ(published_, 3);
  EXPECT_EQ(config_changes_, 1) << "a republish is not a config reload (reloads_total)";
}

TEST_F(Live, RejectedConfigChangesNothing) {
  start(test::example_path("node-b.textproto"), false);
  const dp::Snapshot* before = snap_.get();
  auto r = live_->apply(with_extra_workload(cfg_, "node-z"), false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.generation, 1u);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].resource, "workload default/extra");
  EXPECT_EQ(r.errors[0].field, "node");
  EXPECT_EQ(snap_.get(), before);
  EXPECT_EQ(published_, 0);
  EXPECT_EQ(live_->config().workloads_size(), cfg_.workloads_size());
  EXPECT_NE(log_.find("E vanishd: config rejected, generation 1 keeps serving:\nE   workload "
                      "default/extra: node: "),
            std::string::npos)
      << log_;
  EXPECT_NE(live_->last_reload_error().find("workload default/extra: node"), std::string::npos);
  // A good one afterwards clears the error.
  ASSERT_TRUE(live_->apply(cfg_, false).ok);
  EXPECT_EQ(live_->last_reload_error(), "");
}

TEST_F(Live, DryRunPublishesNothing) {
  start(test::example_path("node-b.textproto"), false);
  auto r = live_->apply(with_extra_workload(cfg_, "node-b"), true);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.generation, 2u);
  EXPECT_EQ(generation(), 1u);
  EXPECT_EQ(published_, 0);
  EXPECT_EQ(log_, "");
}

TEST_F(Live, NodePortsAndIncludesCannotChangeLive) {
  start(test::example_path("node-b.textproto"), false);
  config::Config c = cfg_;
  c.set_this_node("node-a");
  auto r = live_->apply(c, false);
  EXPECT_FALSE(r.ok);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].field, "this_node");
  c = cfg_;
  c.mutable_ports()->set_fabric(2);
  r = live_->apply(c, false);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.errors[0].field, "ports.fabric");
  c = cfg_;
  c.add_include("mesh.textproto");
  r = live_->apply(c, false);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.errors[0].field, "include");
  EXPECT_EQ(published_, 0);
}

TEST_F(Live, FileAndIncludeChangesAreReloaded) {
  TempDir d;
  for (const char* f : {"node-b.textproto", "mesh.textproto"}) {
    std::ifstream in(test::example_path(f));
    std::stringstream ss;
    ss << in.rdbuf();
    d.write(f, ss.str());
  }
  std::string top = d.path() + "/node-b.textproto";
  start(top, true);
  for (int i = 0; i < 5; i++) live_->poll();
  EXPECT_EQ(generation(), 1u);

  // The top file, rewritten in place.
  std::ofstream(top, std::ios::app) << "\n# edited\n";
  ASSERT_TRUE(poll_until_generation(2)) << log_;

  // The include, replaced by rename.
  std::string mesh;
  {
    std::ifstream in(d.path() + "/mesh.textproto");
    std::stringstream ss;
    ss << in.rdbuf();
    mesh = ss.str();
  }
  std::string tmp = d.write("mesh.tmp", mesh + "\n# a comment makes it differ\n");
  ASSERT_EQ(::rename(tmp.c_str(), (d.path() + "/mesh.textproto").c_str()), 0);
  ASSERT_TRUE(poll_until_generation(3)) << log_;

  // A broken include: rejected, generation 3 keeps serving; fixed again: generation 4.
  d.write("mesh.textproto", mesh + "\nnot valid {{{\n");
  for (int i = 0; i < 100 && live_->last_reload_error().empty(); i++) {
    live_->poll();
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_NE(live_->last_reload_error().find("mesh.textproto"), std::string::npos) << log_;
  EXPECT_EQ(generation(), 3u);
  d.write("mesh.textproto", mesh);
  ASSERT_TRUE(poll_until_generation(4)) << log_;
  EXPECT_EQ(live_->last_reload_error(), "");
}

TEST_F(Live, ControlSocketEndToEnd) {
  TempDir d;
  std::string sock = d.path() + "/node-b.sock";
  start(test::example_path("node-b.textproto"), false, sock);
  std::atomic<bool> stop{false};
  // The "control loop": LiveConfig is only touched by this thread while it runs.
  std::thread loop([&] {
    while (!stop.load()) {
      live_->poll();
      std::this_thread::sleep_for(1ms);
    }
  });
  ControlClient c;
  std::string err;
  ASSERT_TRUE(c.connect(sock, &err)) << err;
  v1::Request req;
  v1::Response resp;
  req.mutable_status();
  ASSERT_TRUE(c.call(req, &resp, &err, 5s)) << err;
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.status().generation(), 1u);
  EXPECT_EQ(resp.status().decision_generation(), 1u);
  EXPECT_EQ(resp.status().node(), "node-b");
  EXPECT_EQ(resp.status().n_workers(), 2u);

  req.Clear();
  *req.mutable_apply_config()->mutable_config() = with_extra_workload(cfg_, "node-b");
  ASSERT_TRUE(c.call(req, &resp, &err, 5s)) << err;
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.generation(), 2u);

  req.Clear();
  *req.mutable_apply_config()->mutable_config() = with_extra_workload(cfg_, "node-z");
  ASSERT_TRUE(c.call(req, &resp, &err, 5s)) << err;
  EXPECT_FALSE(resp.ok());
  EXPECT_EQ(resp.generation(), 2u);
  ASSERT_GT(resp.errors_size(), 0);
  EXPECT_EQ(resp.errors(0).resource(), "workload default/extra");
  EXPECT_EQ(resp.errors(0).field(), "node");

  req.Clear();
  req.mutable_validate_config()->mutable_config()->CopyFrom(cfg_);
  ASSERT_TRUE(c.call(req, &resp, &err, 5s)) << err;
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.generation(), 3u);  // would be

  req.Clear();
  req.mutable_get_config();
  ASSERT_TRUE(c.call(req, &resp, &err, 5s)) << err;
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.generation(), 2u);
  EXPECT_EQ(resp.config().workloads_size(), cfg_.workloads_size() + 1);
  stop.store(true);
  loop.join();
  EXPECT_EQ(published_, 1);
}

}  // namespace
}  // namespace vanish::ctl
