#include "ctl/vanishctl_ca.hpp"

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "ctl/dev_ca.hpp"

namespace vanish::ctl {
namespace {

struct CaArgs {
  std::string dir;
  std::string trust_domain = "cluster.local";
  std::string spiffe_id;
  std::string out;
  int days = 0;
  std::string not_before;
  std::string not_after;
};

bool parse_times(const CaArgs& a, std::optional<int64_t>* nb, std::optional<int64_t>* na) {
  if (!a.not_before.empty()) {
    *nb = parse_cert_time(a.not_before);
    if (!*nb) {
      std::cerr << "vanishctl ca: --not-before \"" << a.not_before
                << "\": expected 2024-01-31T12:00:00Z, 2024-01-31 or @UNIX_SECONDS\n";
      return false;
    }
  }
  if (!a.not_after.empty()) {
    *na = parse_cert_time(a.not_after);
    if (!*na) {
      std::cerr << "vanishctl ca: --not-after \"" << a.not_after
                << "\": expected 2024-01-31T12:00:00Z, 2024-01-31 or @UNIX_SECONDS\n";
      return false;
    }
  }
  return true;
}

}  // namespace

void add_ca_commands(CLI::App& app, std::function<int()>* run) {
  auto args = std::make_shared<CaArgs>();
  CLI::App* ca = app.add_subcommand("ca", "development CA for mTLS peering (SPIFFE node certs)");
  ca->require_subcommand(1);

  CLI::App* init = ca->add_subcommand("init", "create a CA: DIR/bundle.pem, DIR/ca-key.pem");
  init->add_option("--dir", args->dir, "CA directory (created if missing)")->required();
  init->add_option("--trust-domain", args->trust_domain, "SPIFFE trust domain")
      ->capture_default_str();
  init->add_option("--days", args->days, "validity in days (default 3650)");
  init->add_option("--not-before", args->not_before, "validity start (tests)");
  init->add_option("--not-after", args->not_after, "validity end (tests)");
  init->callback([args, run] {
    *run = [args] {
      CaOptions o;
      o.trust_domain = args->trust_domain;
      if (args->days > 0) o.days = args->days;
      if (!parse_times(*args, &o.not_before, &o.not_after)) return 2;
      std::string err;
      if (!write_ca_dir(args->dir, o, &err)) {
        std::cerr << "vanishctl ca init: " << err << "\n";
        return err.find(" exists:") != std::string::npos ? 1 : 2;
      }
      std::cout << "CA for trust domain " << o.trust_domain << ": " << args->dir
                << "/bundle.pem (trust bundle), " << args->dir << "/ca-key.pem (private, 0600)\n";
      return 0;
    };
  });

  CLI::App* issue = ca->add_subcommand("issue", "issue a node certificate with a SPIFFE URI SAN");
  issue->add_option("--dir", args->dir, "CA directory (from ca init)")->required();
  issue->add_option("--spiffe-id", args->spiffe_id, "spiffe://TD/path of the node")->required();
  issue
      ->add_option("--out", args->out,
                   "PREFIX: writes PREFIX-cert.pem, PREFIX-key.pem, PREFIX-bundle.pem "
                   "(PREFIX/cert.pem ... when PREFIX is a directory or ends in '/')")
      ->required();
  issue->add_option("--days", args->days, "validity in days (default 365)");
  issue->add_option("--not-before", args->not_before, "validity start (tests)");
  issue->add_option("--not-after", args->not_after, "validity end (tests)");
  issue->callback([args, run] {
    *run = [args] {
      IssueOptions o;
      o.spiffe_id = args->spiffe_id;
      if (args->days > 0) o.days = args->days;
      if (!parse_times(*args, &o.not_before, &o.not_after)) return 2;
      std::string err;
      std::vector<std::string> written;
      if (!write_node_files(args->dir, o, args->out, &written, &err)) {
        std::cerr << "vanishctl ca issue: " << err << "\n";
        // A refused id is 1; an I/O problem 2.
        bool io = err.find(": No such file") != std::string::npos ||
                  err.find(": Permission denied") != std::string::npos;
        return io ? 2 : 1;
      }
      std::cout << "issued " << o.spiffe_id << ":";
      for (const std::string& f : written) std::cout << " " << f;
      std::cout << "\n";
      return 0;
    };
  });
}

}  // namespace vanish::ctl
