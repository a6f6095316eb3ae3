// Fuzz target: config bytes in any of the three formats (first byte selects text/JSON/binary)
// through load -> validate -> compile. Nothing may crash; bad input is an error list.
#include <fstream>
#include <iterator>
#include <string>

#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "tests/fuzz/fuzz_target.hpp"

using namespace vanish;

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  std::vector<std::vector<uint8_t>> out;
  for (const char* f : {"mesh.textproto", "node-a.textproto"}) {
    std::ifstream in(std::string(VANISH_SOURCE_ROOT) + "/examples/" + f);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<uint8_t> v{0};
    v.insert(v.end(), s.begin(), s.end());
    out.push_back(v);
  }
  // The full node-a config (includes merged) as JSON and binary seeds too.
  config::Config cfg;
  std::vector<std::string> errs;
  if (ctl::load_config(std::string(VANISH_SOURCE_ROOT) + "/examples/node-a.textproto", &cfg,
                       &errs)) {
    std::string j, b;
    ctl::config_to_string(cfg, ctl::ConfigFormat::kJson, &j);
    ctl::config_to_string(cfg, ctl::ConfigFormat::kBinary, &b);
    std::vector<uint8_t> vj{1}, vb{2};
    vj.insert(vj.end(), j.begin(), j.end());
    vb.insert(vb.end(), b.begin(), b.end());
    out.push_back(vj);
    out.push_back(vb);
  }
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const ctl::ConfigFormat fmts[] = {ctl::ConfigFormat::kText, ctl::ConfigFormat::kJson,
                                           ctl::ConfigFormat::kBinary};
  ctl::ConfigFormat f = fmts[data[0] % 3];
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  config::Config cfg;
  std::vector<std::string> errs;
  // The origin directory has no files: includes fail cleanly instead of reading the disk.
  if (!ctl::load_config_from_string(text, f, &cfg, &errs, "/nonexistent/fuzz.cfg")) return 0;
  std::vector<ctl::ConfigError> cerrs;
  for (unsigned workers : {1u, 3u}) {
    auto snap = ctl::compile_snapshot(cfg, ctl::CompileOptions{workers, 1}, nullptr, &cerrs);
    (void)snap;
  }
  return 0;
}
