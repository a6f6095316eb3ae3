// Fuzz target: bytes from a control-socket client through the server's request path: split into
// reads of fuzzer-chosen sizes, framed (FrameReader, 16 MiB limit), decoded (decode_request) and
// handled by a LiveConfig (apply / dry run / validate / get config / status against a compiled
// node-b snapshot; no DPDK). Nothing may crash; bad input is an error response.
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>

#include "ctl/config_loader.hpp"
#include "ctl/control_frame.hpp"
#include "ctl/live_config.hpp"
#include "tests/fuzz/fuzz_target.hpp"

using namespace vanish;

namespace {

std::string node_b() {
  return std::string(VANISH_SOURCE_ROOT) + "/examples/node-b.textproto";
}

struct Harness {
  std::unique_ptr<dp::Snapshot> snap;
  std::unique_ptr<ctl::LiveConfig> live;
  Harness() {
    // Invalid UTF-8 in string fields is logged by protobuf on every parse: not a finding.
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    config::Config cfg;
    std::vector<std::string> errs;
    ctl::load_config(node_b(), &cfg, &errs);
    std::vector<ctl::ConfigError> cerrs;
    snap = ctl::compile_snapshot(cfg, ctl::CompileOptions{2, 1}, nullptr, &cerrs);
    ctl::LiveConfigOptions o;
    o.config_path = node_b();
    o.compile = ctl::CompileOptions{2, 1};
    o.watch = false;
    live = std::make_unique<ctl::LiveConfig>(
        o, cfg, std::vector<std::string>{}, [this] { return snap.get(); },
        [this](std::unique_ptr<dp::Snapshot> s, bool) { snap = std::move(s); },
        [](bool, const std::string&) {});
  }
};

std::vector<uint8_t> frames(uint8_t chunk, const std::vector<vanish::ctl::v1::Request>& reqs) {
  std::vector<uint8_t> out{chunk};
  for (const auto& r : reqs) {
    std::string f;
    ctl::encode_frame(r, &f);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

}  // namespace

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  namespace v1 = vanish::ctl::v1;
  config::Config cfg;
  std::vector<std::string> errs;
  ctl::load_config(node_b(), &cfg, &errs);
  v1::Request status, get, apply, dry, validate;
  status.set_id(1);
  status.mutable_status();
  get.set_id(2);
  get.mutable_get_config();
  *apply.mutable_apply_config()->mutable_config() = cfg;
  *dry.mutable_apply_config()->mutable_config() = cfg;
  dry.mutable_apply_config()->set_dry_run(true);
  *validate.mutable_validate_config()->mutable_config() = cfg;
  std::vector<std::vector<uint8_t>> out;
  out.push_back(frames(0, {status, get}));
  out.push_back(frames(7, {apply, status}));
  out.push_back(frames(200, {dry, validate, get}));
  out.push_back({3, 0xff, 0xff, 0xff, 0xff, 1, 2, 3});  // oversized length
  out.push_back({1, 0, 0, 0, 3, 0xff, 0xff, 0xff});     // malformed body
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size < 1) return 0;
  size_t chunk = size_t(data[0]) + 1;  // bytes per "read"
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  ctl::FrameReader rd(ctl::kMaxRequestBytes);
  while (n > 0) {
    size_t k = std::min({n, chunk, rd.want()});
    size_t used = rd.feed(p, k);
    p += used;
    n -= used;
    if (rd.state() == ctl::FrameReader::State::kTooLarge) return 0;  // server: error + close
    if (rd.state() != ctl::FrameReader::State::kComplete) continue;
    std::string body = rd.take();
    vanish::ctl::v1::Request req;
    vanish::ctl::v1::Response resp;
    std::string err;
    if (ctl::decode_request(body, &req, &err)) h.live->handle(req, &resp);
    std::string out;
    ctl::encode_frame(resp, &out);
  }
  return 0;
}
