#include "tests/unit/dataplane/capture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace vanish::test {

namespace {

bool have(const char* prog) {
  std::string cmd = std::string("command -v ") + prog + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

pid_t spawn(const std::string& cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    const std::string exec_cmd = "exec " + cmd;  // the pid we stop is the program itself
    execl("/bin/sh", "sh", "-c", exec_cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

void reap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

int bound_socket(int type, uint16_t* port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (type == SOCK_STREAM && listen(fd, 4) != 0) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

bool wait_readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

// Accepts one connection and reads what arrives until `done` says the payload is complete (or
// 300 ms of silence after the first bytes, or 5 s in all).
template <typename Done>
std::optional<Bytes> capture_tcp(const std::string& cmd_with_port, int lfd, Done done) {
  pid_t pid = spawn(cmd_with_port);
  std::optional<Bytes> out;
  if (wait_readable(lfd, 5000)) {
    int c = accept(lfd, nullptr, nullptr);
    if (c >= 0) {
      Bytes got;
      uint8_t buf[4096];
      while (wait_readable(c, got.empty() ? 5000 : 300)) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.insert(got.end(), buf, buf + n);
        if (done(got)) break;
      }
      close(c);
      if (!got.empty()) out = std::move(got);
    }
  }
  reap(pid);
  close(lfd);
  return out;
}

}  // namespace

std::optional<Bytes> capture_client_hello(const std::string& sni, const std::string& extra) {
  if (!have("openssl")) return std::nullopt;
  uint16_t port;
  int lfd = bound_socket(SOCK_STREAM, &port);
  if (lfd < 0) return std::nullopt;
  std::string cmd = "openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                    (sni.empty() ? " -noservername" : " -servername " + sni) + " " + extra;
  return capture_tcp(cmd, lfd, [](const Bytes& b) {
    return b.size() >= 5 && b.size() >= 5u + (size_t(b[3]) << 8 | b[4]);  // one whole record
  });
}

std::optional<Bytes> capture_http_request(const std::string& host) {
  if (!have("curl")) return std::nullopt;
  uint16_t port;
  int lfd = bound_socket(SOCK_STREAM, &port);
  if (lfd < 0) return std::nullopt;
  std::string p = std::to_string(port);
  std::string cmd = "curl -s -m 5 --noproxy '*' --resolve " + host + ":" + p +
                    ":127.0.0.1 http://" + host + ":" + p + "/get";
  return capture_tcp(cmd, lfd, [](const Bytes& b) {
    std::string s(b.begin(), b.end());
    return s.find("\r\n\r\n") != std::string::npos;
  });
}

std::optional<Bytes> capture_dns_query(const std::string& name) {
  if (!have("dig")) return std::nullopt;
  uint16_t port;
  int fd = bound_socket(SOCK_DGRAM, &port);
  if (fd < 0) return std::nullopt;
  pid_t pid = spawn("dig @127.0.0.1 -p " + std::to_string(port) + " " + name +
                    " A +tries=1 +time=2 +noedns");
  std::optional<Bytes> out;
  if (wait_readable(fd, 5000)) {
    uint8_t buf[1500];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) out = Bytes(buf, buf + n);
  }
  reap(pid);
  close(fd);
  return out;
}

bool write_pcap(const std::string& path, const std::vector<Bytes>& frames) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
  std::fwrite(hdr, sizeof hdr, 1, f);
  uint32_t t = 0;
  for (const Bytes& fr : frames) {
    const uint32_t rec[4] = {t++, 0, uint32_t(fr.size()), uint32_t(fr.size())};
    std::fwrite(rec, sizeof rec, 1, f);
    std::fwrite(fr.data(), 1, fr.size(), f);
  }
  return std::fclose(f) == 0;
}

std::vector<Bytes> read_pcap(const std::string& path) {
  std::vector<Bytes> out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  uint32_t hdr[6];
  if (std::fread(hdr, sizeof hdr, 1, f) == 1 && hdr[0] == 0xa1b2c3d4) {
    uint32_t rec[4];
    while (std::fread(rec, sizeof rec, 1, f) == 1 && rec[2] <= 65535) {
      Bytes b(rec[2]);
      if (rec[2] && std::fread(b.data(), 1, rec[2], f) != rec[2]) break;
      out.push_back(std::move(b));
    }
  }
  std::fclose(f);
  return out;
}

}  // namespace vanish::test
