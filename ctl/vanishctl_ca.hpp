// `vanishctl ca init|issue`: the development CA (ctl/dev_ca.hpp) from the command line, so the
// demo and the tests need no other tool.
//
//   vanishctl ca init  --dir D [--trust-domain cluster.local] [--days N]
//   vanishctl ca issue --dir D --spiffe-id spiffe://TD/ns/NS/sa/NAME --out PREFIX [--days N]
//                      [--not-before T] [--not-after T]
//
// Exit status: 0 done, 1 refused (bad SPIFFE id, foreign trust domain, CA exists), 2 bad usage
// or unreadable/unwritable files. The private keys are never printed.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace vanish::ctl {

void add_ca_commands(CLI::App& app, std::function<int()>* run);

}  // namespace vanish::ctl
