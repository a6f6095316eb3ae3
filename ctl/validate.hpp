// Semantic validation of a loaded config (after includes are merged).
//
// Contract: validate_config() checks the whole config, appends one ConfigError per problem
// (it does not stop at the first), and returns true only if it appended none. A config that
// fails is rejected whole; compile_snapshot() validates again before it builds anything.
// Authorization policies are checked (names, scopes, matches, references from workloads);
// service semantics beyond basic shape are not checked here yet.
#pragma once

#include <string>
#include <vector>

#include "vanish/config.pb.h"

namespace vanish::ctl {

struct ConfigError {
  std::string resource;  // "workload default/sleep", "node node-a", "static_sa node-a->node-b"
  std::string field;     // "addresses[1]", "spi_base"; may be empty
  std::string reason;    // "10.9.0.1 is outside node node-a's workload_prefixes (10.1.0.0/24)"
  // "workload default/sleep: addresses[1]: 10.9.0.1 is outside ..."
  std::string str() const;
};

bool validate_config(const config::Config& cfg, std::vector<ConfigError>* errors);

}  // namespace vanish::ctl
