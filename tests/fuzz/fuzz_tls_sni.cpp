// Fuzz target: the TLS ClientHello SNI parser (dataplane/hostname_parse.hpp), the first payload
// of every hostname-governed TCP flow to the outside.
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/hostname_seeds.hpp"

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  return {client_hello("allowed.test"), client_hello("a.b.example.com"), client_hello("", false),
          client_hello(std::string(200, 'x'))};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vanish::dp::HostName n;
  vanish::fuzz::check_result(vanish::dp::parse_tls_sni(data, size, &n), n);
  vanish::fuzz::check_result(vanish::dp::parse_tcp_first_payload(data, size, &n), n);
  return 0;
}
