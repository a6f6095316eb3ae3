// vanishctl's data-plane views: the server-side filter (ctl/view_filter.hpp) and the rendering
// of the replies (ctl/views_render.hpp).
#include <gtest/gtest.h>

#include "ctl/view_filter.hpp"
#include "ctl/views_render.hpp"

namespace vanish::ctl {
namespace {

TEST(ViewFilter, EmptyMatchTakesEverythingUpToTheLimit) {
  ViewFilter f("", 2);
  int shown = 0;
  for (int i = 0; i < 5; i++)
    if (f.matches({"a"}) && f.take()) shown++;
  EXPECT_EQ(shown, 2);
  EXPECT_EQ(f.total(), 5u);
  EXPECT_EQ(f.shown(), 2u);
}

TEST(ViewFilter, LimitZeroIsTheDefaultAndLargeLimitsAreCapped) {
  EXPECT_EQ(ViewFilter("", 0).limit(), ViewFilter::kDefaultLimit);
  EXPECT_EQ(ViewFilter("", 4000000000u).limit(), ViewFilter::kMaxLimit);
  EXPECT_EQ(ViewFilter("", 7).limit(), 7u);
}

TEST(ViewFilter, MatchIsACaseInsensitiveSubstringOfAnyColumn) {
  ViewFilter f("HttpBin", 10);
  EXPECT_TRUE(f.matches({"default", "httpbin-1"}));
  EXPECT_TRUE(f.matches({"HTTPBIN.default.svc", ""}));
  EXPECT_FALSE(f.matches({"default", "sleep"}));
  EXPECT_FALSE(f.matches({}));
  EXPECT_FALSE(f.matches_one("http"));  // shorter than the pattern
  EXPECT_TRUE(ViewFilter("10.2.0", 1).matches_one("10.2.0.20"));
}

TEST(ViewFilter, ByteBudgetStopsShowingButKeepsCounting) {
  ViewFilter f("", 100);
  ASSERT_TRUE(f.take());
  f.add_bytes(ViewFilter::kMaxBytes);
  EXPECT_FALSE(f.take());
  EXPECT_FALSE(f.take());
  EXPECT_EQ(f.total(), 3u);
  EXPECT_EQ(f.shown(), 1u);
}

TEST(Table, AlignsColumnsDashesEmptyCellsTrimsLines) {
  std::string t = views::table({"A", "LONG HEADER", "C"}, {{"xyz", "", "1"}, {"a", "b", ""}});
  EXPECT_EQ(t,
            "A    LONG HEADER  C\n"
            "xyz  -            1\n"
            "a    b            -\n");
  // " " stays blank (continuation lines).
  EXPECT_EQ(views::table({"A", "B"}, {{" ", "x"}}), "A  B\n   x\n");
}

TEST(Table, ShownNoteOnlyWhenRowsWereLeftOut) {
  EXPECT_EQ(views::shown_note(5, 5), "");
  EXPECT_EQ(views::shown_note(5, 2), "(shown 2 of 5; --limit N / --match TEXT)\n");
}

TEST(Workloads, JsonAndTable) {
  v1::WorkloadRows r;
  r.set_total(7);
  r.set_shown(1);
  v1::WorkloadRow* w = r.add_rows();
  w->set_name("sleep");
  w->set_namespace_("default");
  w->set_node("node-a");
  w->add_addresses("10.1.0.10");
  w->add_addresses("fd00:10:1::10");
  w->set_principal("cluster.local/ns/default/sa/sleep");
  w->set_identity_id(0x1871fdbe);
  w->set_local(true);
  w->set_mac("02:00:00:aa:00:10");
  views::Json j = views::workloads_json(r);
  EXPECT_EQ(j["total"], 7);
  EXPECT_EQ(j["shown"], 1);
  EXPECT_EQ(j["workloads"][0]["identity_id"], "0x1871fdbe");
  EXPECT_EQ(j["workloads"][0]["addresses"][1], "fd00:10:1::10");
  EXPECT_EQ(j["workloads"][0]["local"], true);
  std::string t = views::workloads_text(r);
  EXPECT_NE(t.find("default/sleep  node-a  local  10.1.0.10,fd00:10:1::10  "
                   "cluster.local/ns/default/sa/sleep  0x1871fdbe  02:00:00:aa:00:10\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("(shown 1 of 7;"), std::string::npos);
}

TEST(Sas, InboundRowsShowReplayDropsOrThatAntiReplayIsOff) {
  v1::SaRows r;
  r.set_total(3);
  r.set_shown(3);
  auto add = [&](uint32_t spi, const char* dir, uint32_t window) {
    v1::SaRow* s = r.add_rows();
    s->set_spi(spi);
    s->set_direction(dir);
    s->set_peer("node-b");
    s->set_cipher("aes-128-gcm");
    s->set_esn(window != 0);
    s->set_seq(42);
    s->set_packets(40);
    s->set_replay_drops(2);
    s->set_replay_window(window);
    s->set_udp_sport(49152);
  };
  add(0xa00, "out", 0);
  add(0xb00, "in", 4096);
  add(0xb01, "in", 0);
  views::Json j = views::sas_json(r);
  EXPECT_EQ(j["sas"][0].count("replay_window"), 0u);
  EXPECT_EQ(j["sas"][1]["replay_window"], 4096);
  EXPECT_EQ(j["sas"][2]["replay_window"], 0);
  std::string t = views::sas_text(r);
  EXPECT_NE(t.find("0x00000b00  in   node-b  0       aes-128-gcm  yes  42   40       2"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("0x00000b01  in   node-b  0       aes-128-gcm  no   42   40       off (no "
                   "anti-replay)"),
            std::string::npos)
      << t;
}

TEST(Services, OneLinePerVipWithBracketedIpv6) {
  v1::ServiceRows r;
  r.set_total(1);
  r.set_shown(1);
  v1::ServiceRow* s = r.add_rows();
  s->set_name("httpbin");
  s->set_namespace_("default");
  s->set_hostname("httpbin.default.svc.cluster.local");
  for (const char* addr : {"10.96.0.20", "fd00:96::20"}) {
    v1::VipRow* v = s->add_vips();
    v->set_address(addr);
    v->set_port(80);
    v->set_endpoints_total(3);
    v1::EndpointRow* e = v->add_endpoints();
    e->set_workload("default/httpbin-1");
    e->set_address(std::string(addr)[0] == 'f' ? "fd00:10:2::20" : "10.2.0.20");
    e->set_target_port(8080);
    e->set_weight(2);
  }
  std::string t = views::services_text(r);
  EXPECT_NE(t.find("10.96.0.20:80     default/httpbin-1=10.2.0.20:8080/w2 (+2 more)"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("[fd00:96::20]:80  default/httpbin-1=[fd00:10:2::20]:8080/w2"),
            std::string::npos)
      << t;
  views::Json j = views::services_json(r);
  EXPECT_EQ(j["services"][0]["vips"][1]["endpoints"][0]["weight"], 2);
  EXPECT_EQ(j["services"][0]["vips"][0]["endpoints_total"], 3);
}

TEST(Peers, HandshakeAndRekeysAreNullUntilPeering) {
  v1::PeerRows r;
  v1::PeerRow* p = r.add_rows();
  p->set_name("node-b");
  p->set_state("reachable");
  views::Json j = views::peers_json(r);
  EXPECT_TRUE(j["peers"][0]["last_handshake"].is_null());
  EXPECT_TRUE(j["peers"][0]["rekeys"].is_null());
  p->set_rekeys(3);
  EXPECT_EQ(views::peers_json(r)["peers"][0]["rekeys"], 3);
}

v1::StatsReport report(uint64_t time_ns, uint64_t rx0, uint64_t rx1, uint64_t drop1) {
  v1::StatsReport r;
  r.set_node("node-a");
  r.set_time_ns(time_ns);
  uint64_t rx[2] = {rx0, rx1};
  for (uint32_t w = 0; w < 2; w++) {
    v1::WorkerStats* ws = r.add_workers();
    ws->set_id(w);
    v1::Counter* c = ws->add_counters();
    c->set_name("local_rx");
    c->set_value(rx[w]);
    c = ws->add_counters();
    c->set_name("encrypted");
    c->set_value(0);
    if (w == 1 && drop1) {
      c = ws->add_drops();
      c->set_name("no_sa");
      c->set_value(drop1);
      c->set_description("no valid outbound SA");
    }
  }
  return r;
}

TEST(Stats, TotalsSumWorkersAndDrops) {
  views::Json j = views::stats_json(report(1'000'000'000, 10, 5, 3), nullptr);
  EXPECT_EQ(j["total"]["local_rx"], 15);
  EXPECT_EQ(j["total"]["drops"]["no_sa"], 3);
  EXPECT_EQ(j["total"]["drops_total"], 3);
  EXPECT_EQ(j["workers"][1]["drops"]["no_sa"], 3);
  EXPECT_TRUE(j["workers"][0]["drops"].empty());
  EXPECT_FALSE(j.contains("rates"));
}

TEST(Stats, RatesPerSecondFromTwoReports) {
  v1::StatsReport a = report(1'000'000'000, 10, 5, 0), b = report(3'000'000'000, 30, 25, 4);
  views::Json j = views::stats_json(b, &a);
  EXPECT_DOUBLE_EQ(j["interval_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["rates"]["local_rx"].get<double>(), 20.0);  // (55 - 15) / 2
  EXPECT_DOUBLE_EQ(j["rates"]["drops"]["no_sa"].get<double>(), 2.0);
  // A counter that went backwards (vanishd restarted) has rate 0.
  views::Json back = views::stats_json(report(4'000'000'000, 1, 1, 0), &b);
  EXPECT_DOUBLE_EQ(back["rates"]["local_rx"].get<double>(), 0.0);
}

TEST(Stats, TableShowsNonZeroCountersPerWorkerAndDropDescriptions) {
  v1::StatsReport a = report(1'000'000'000, 10, 5, 0), b = report(3'000'000'000, 30, 25, 4);
  std::string t = views::stats_text(b, &a);
  EXPECT_NE(t.find("COUNTER   TOTAL  PER SEC  W0  W1\nlocal_rx  55     20.0     30  25\n"),
            std::string::npos)
      << t;
  EXPECT_EQ(t.find("encrypted"), std::string::npos) << t;  // zero: not shown
  EXPECT_NE(t.find("no_sa        4      2.0      0   4   no valid outbound SA"), std::string::npos)
      << t;
  EXPECT_NE(views::stats_text(report(1, 1, 1, 0), nullptr).find("drops: none"), std::string::npos);
}

}  // namespace
}  // namespace vanish::ctl
