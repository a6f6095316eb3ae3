// vanishctl: the operator CLI of vanish. Each subcommand lives in its own ctl/vanishctl_*.cpp and
// registers itself here; offline ones (check, config validate) work on a config file, the others
// (config apply/show, status) talk to a running vanishd over its Unix socket.
// Exit status: the subcommand's (check: 0 allowed, 1 denied, 2 bad input; config/status: 0 ok,
// 1 invalid or rejected config, 2 unreadable file or vanishd unreachable); usage errors 2;
// --help 0.
#include <CLI/CLI.hpp>

#include <functional>
#include <iostream>

#include "ctl/vanishctl_ca.hpp"
#include "ctl/vanishctl_check.hpp"
#include "ctl/vanishctl_config.hpp"
#include "ctl/vanishctl_flows.hpp"
#include "ctl/vanishctl_views.hpp"

int main(int argc, char** argv) {
  CLI::App app{"vanishctl: operator CLI of vanish (Istio ambient L4 secure overlay appliance)",
               "vanishctl"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  std::function<int()> run;  // set by the callback of the subcommand that was parsed
  vanish::ctl::add_check_command(app, &run);
  vanish::ctl::add_config_commands(app, &run);
  vanish::ctl::add_flows_commands(app, &run);
  vanish::ctl::add_view_commands(app, &run);
  vanish::ctl::add_ca_commands(app, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : vanish::ctl::kExitBadInput;
  }
  return run ? run() : vanish::ctl::kExitBadInput;
}
