// Egress config (Config.egress): validation and compilation into a dp::HostPolicy.
//
// Contract
// - validate_egress() appends one ConfigError per problem (resource "egress" or
//   "egress rule NAME") and returns true when it appended none. validate_config() calls it.
// - build_host_policy() runs on the control thread for a validated config: it compiles every
//   host pattern of every rule into one Hyperscan block-mode literal database
//   (hs_compile_lit_multi, HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS) and allocates one scratch per
//   worker. Names are scanned reversed and framed, kHostBegin + reverse(name) + kHostEnd, so an
//   exact host is the literal kHostBegin + reverse(host) + kHostEnd, "*.example.com" is
//   kHostBegin + "moc.elpmaxe." (any subdomain, any depth, not example.com itself) and "*" is
//   kHostBegin (every name). Literals compile far faster than the equivalent anchored regexes
//   (^.+\.example\.com$: seconds per thousand patterns), and reversing puts the labels that
//   tell hosts apart at the literals' ends, which Hyperscan's literal matcher hashes on (names
//   sharing a long common suffix such as ".example.com" would otherwise all land in one bucket
//   and be confirmed one by one). When `previous` has a database for the same patterns and
//   worker count, that database is shared instead (no recompilation). Returns null when the config
//   has no egress block; on a Hyperscan error, null and *error set.
// - host_expression() is the Hyperscan literal of one configured host.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ctl/validate.hpp"
#include "dataplane/host_policy.hpp"
#include "vanish/config.pb.h"

namespace vanish::ctl {

bool validate_egress(const config::Config& cfg, std::vector<ConfigError>* errors);

std::shared_ptr<const dp::HostPolicy> build_host_policy(const config::Config& cfg,
                                                        unsigned n_workers,
                                                        const dp::HostPolicy* previous,
                                                        std::string* error);

std::string host_expression(const std::string& host);

}  // namespace vanish::ctl
