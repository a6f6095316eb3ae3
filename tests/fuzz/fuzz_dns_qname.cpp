// Fuzz target: the DNS query name parser (dataplane/hostname_parse.hpp), every UDP/53 query to
// the outside when a hostname rule governs it.
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/hostname_seeds.hpp"

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  return {dns_query({"allowed", "test"}), dns_query({"www", "example", "com"}), dns_query({})};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vanish::dp::HostName n;
  vanish::fuzz::check_result(vanish::dp::parse_dns_qname(data, size, &n), n);
  return 0;
}
