// Helpers shared by the ctl unit tests.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ctl/config_loader.hpp"
#include "vanish/config.pb.h"

namespace vanish::ctl::test {

inline std::string example_path(const std::string& name) {
  return std::string(VANISH_SOURCE_ROOT) + "/examples/" + name;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

// Loads an example file or fails the test.
inline config::Config load_example(const std::string& name) {
  config::Config c;
  std::vector<std::string> errors;
  EXPECT_TRUE(load_config(example_path(name), &c, &errors)) << join(errors);
  return c;
}

// A fresh temporary directory, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vanish-ctl-XXXXXX").string();
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::string path_;
};

// Raw octets of a textual address (for Istio `bytes` addresses).
inline std::string raw_ip(const std::string& text) {
  unsigned char b[16];
  if (inet_pton(AF_INET, text.c_str(), b) == 1) return std::string(reinterpret_cast<char*>(b), 4);
  if (inet_pton(AF_INET6, text.c_str(), b) == 1) return std::string(reinterpret_cast<char*>(b), 16);
  ADD_FAILURE() << "bad address in test: " << text;
  return {};
}

}  // namespace vanish::ctl::test
