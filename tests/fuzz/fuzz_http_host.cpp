// Fuzz target: the HTTP/1.x Host header parser (dataplane/hostname_parse.hpp).
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/hostname_seeds.hpp"

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  return {text("GET /get HTTP/1.1\r\nHost: allowed.test:8080\r\nUser-Agent: curl/7.88.1\r\n"
               "Accept: */*\r\n\r\n"),
          text("POST /x HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
          text("GET / HTTP/1.1\nhost:a.b\n\n")};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vanish::dp::HostName n;
  vanish::fuzz::check_result(vanish::dp::parse_http_host(data, size, &n), n);
  return 0;
}
