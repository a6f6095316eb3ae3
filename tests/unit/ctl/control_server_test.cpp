// The control socket: framing (FrameReader), server bounds (garbage, oversized length, truncated
// frame, slow client, too many connections, malformed protobuf), socket file handling, client.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "ctl/control_client.hpp"
#include "ctl/control_server.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// --------------------------------------------------------------------------------------------
// FrameReader

std::string header(uint32_t n) {
  return {char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
}

TEST(FrameReader, SplitsFramesFedByteByByte) {
  std::string stream = header(3) + "abc" + header(0) + header(1) + "z";
  FrameReader rd(16);
  std::vector<std::string> got;
  size_t i = 0;
  while (i < stream.size()) {
    ASSERT_GT(rd.want(), 0u);
    EXPECT_EQ(rd.feed(stream.data() + i, 1), 1u);
    i++;
    if (rd.state() == FrameReader::State::kComplete) got.push_back(rd.take());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"abc", "", "z"}));
  EXPECT_TRUE(rd.idle());
}

TEST(FrameReader, NeverConsumesPastTheFrame) {
  std::string stream = header(2) + "ab" + header(1) + "c";
  FrameReader rd(16);
  size_t used = rd.feed(stream.data(), stream.size());
  EXPECT_EQ(used, 6u);
  ASSERT_EQ(rd.state(), FrameReader::State::kComplete);
  EXPECT_EQ(rd.take(), "ab");
  EXPECT_EQ(rd.feed(stream.data() + used, stream.size() - used), 5u);
  EXPECT_EQ(rd.take(), "c");
}

TEST(FrameReader, OversizedLengthStopsBeforeTheBody) {
  FrameReader rd(100);
  std::string s = header(101) + "xxxx";
  EXPECT_EQ(rd.feed(s.data(), s.size()), 4u);
  EXPECT_EQ(rd.state(), FrameReader::State::kTooLarge);
  EXPECT_EQ(rd.length(), 101u);
  EXPECT_EQ(rd.want(), 0u);
}

TEST(DecodeRequest, RejectsGarbageAndEmpty) {
  v1::Request r;
  std::string err;
  EXPECT_FALSE(decode_request("\xff\xff\xff\xff\xff", &r, &err));
  EXPECT_NE(err.find("malformed"), std::string::npos) << err;
  EXPECT_FALSE(decode_request("", &r, &err));
  EXPECT_NE(err.find("no command"), std::string::npos) << err;
  v1::Request ok;
  ok.set_id(7);
  ok.mutable_status();
  EXPECT_TRUE(decode_request(ok.SerializeAsString(), &r, &err));
  EXPECT_EQ(r.id(), 7u);
}

TEST(DefaultSocket, PathPerNode) {
  EXPECT_EQ(default_ctl_socket("node-a"), "/run/vanish/node-a.sock");
  EXPECT_EQ(default_ctl_socket("a/b"), "/run/vanish/a_b.sock");
}

// --------------------------------------------------------------------------------------------
// Server + client

// A server polled by a background thread (the server is only ever touched by that thread while
// it runs; stats are read after stop()).
class Served {
 public:
  explicit Served(ControlServerOptions o, ControlServer::Handler h = default_handler()) {
    std::string err;
    ok_ = server_.open(o, &err);
    EXPECT_TRUE(ok_) << err;
    thread_ = std::thread([this, h] {
      while (!stop_.load()) {
        server_.poll(h, 5);
        conns_.store(server_.connections());
      }
    });
  }
  ~Served() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  ControlServer& server() { return server_; }
  size_t connections() const { return conns_.load(); }
  bool ok() const { return ok_; }

  static ControlServer::Handler default_handler() {
    return [](const v1::Request& req, v1::Response* resp) {
      resp->set_ok(true);
      resp->set_generation(42);
      if (req.has_get_config()) resp->mutable_config()->set_this_node("node-x");
      if (req.has_apply_config())
        resp->mutable_config()->set_this_node(req.apply_config().config().this_node());
    };
  }

 private:
  ControlServer server_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> conns_{0};
  bool ok_ = false;
};

int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += size_t(n);
  }
}

// Reads one response frame; nullopt on EOF/timeout. *eof tells which.
std::optional<v1::Response> read_response(int fd, bool* eof = nullptr,
                                          std::chrono::milliseconds timeout = 3000ms) {
  FrameReader rd(kMaxResponseBytes);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  if (eof) *eof = false;
  while (rd.state() != FrameReader::State::kComplete) {
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())
                       .count());
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, left) <= 0) return std::nullopt;
    ssize_t n = ::recv(fd, buf, std::min(rd.want(), sizeof(buf)), 0);
    if (n <= 0) {
      if (eof) *eof = true;
      return std::nullopt;
    }
    rd.feed(buf, size_t(n));
  }
  v1::Response r;
  if (!r.ParseFromString(rd.take())) return std::nullopt;
  return r;
}

// True if the peer closes the connection within the timeout.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout = 3000ms) {
  bool eof = false;
  while (read_response(fd, &eof, timeout)) {
  }
  return eof;
}

std::string frame_of(const v1::Request& r) {
  std::string f;
  EXPECT_TRUE(encode_frame(r, &f));
  return f;
}

v1::Request status_request(uint64_t id) {
  v1::Request r;
  r.set_id(id);
  r.mutable_status();
  return r;
}

ControlServerOptions opts(const TempDir& d) {
  ControlServerOptions o;
  o.path = d.path() + "/sub/dir/node.sock";
  return o;
}

TEST(ControlServer, SocketFileIsMode0600AndUnlinkedOnClose) {
  TempDir d;
  ControlServer s;
  std::string err;
  ASSERT_TRUE(s.open(opts(d), &err)) << err;
  struct stat st;
  ASSERT_EQ(::stat(opts(d).path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  s.close();
  EXPECT_NE(::stat(opts(d).path.c_str(), &st), 0);
}

TEST(ControlServer, RefusesALiveSocketAndANonSocketReplacesAStaleOne) {
  TempDir d;
  ControlServer a, b;
  std::string err;
  ASSERT_TRUE(a.open(opts(d), &err)) << err;
  EXPECT_FALSE(b.open(opts(d), &err));
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
  // A stale socket (its server gone without unlinking) is replaced.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::string stale = d.path() + "/stale.sock";
  std::strncpy(sa.sun_path, stale.c_str(), sizeof(sa.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ::close(fd);
  ControlServerOptions o;
  o.path = stale;
  EXPECT_TRUE(b.open(o, &err)) << err;
  b.close();
  // A regular file is never removed.
  o.path = d.write("file.sock", "data");
  EXPECT_FALSE(b.open(o, &err));
  EXPECT_NE(err.find("not a socket"), std::string::npos) << err;
  o.path = std::string(200, 'x');
  EXPECT_FALSE(b.open(o, &err));
}

TEST(ControlServer, ClientRoundTrips) {
  TempDir d;
  Served s(opts(d));
  ASSERT_TRUE(s.ok());
  ControlClient c;
  std::string err;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  for (int i = 0; i < 3; i++) {
    v1::Request req;
    req.mutable_get_config();
    v1::Response resp;
    ASSERT_TRUE(c.call(req, &resp, &err, 3s)) << err;
    EXPECT_TRUE(resp.ok());
    EXPECT_EQ(resp.id(), req.id());
    EXPECT_EQ(resp.generation(), 42u);
    EXPECT_EQ(resp.config().this_node(), "node-x");
  }
}

TEST(ControlServer, LargeRequestBelowTheLimitIsServed) {
  TempDir d;
  Served s(opts(d));
  ControlClient c;
  std::string err;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  v1::Request req;
  auto* cfg = req.mutable_apply_config()->mutable_config();
  cfg->set_this_node("big");
  for (int i = 0; i < 25000; i++)
    cfg->add_workloads()->set_name("w" + std::to_string(i) + std::string(400, 'p'));
  ASSERT_GT(req.ByteSizeLong(), 8u << 20);
  v1::Response resp;
  ASSERT_TRUE(c.call(req, &resp, &err, 10s)) << err;
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.config().this_node(), "big");
}

TEST(ControlServer, ClientRefusesToSendAnOversizedRequest) {
  TempDir d;
  Served s(opts(d));
  ControlClient c;
  std::string err;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  v1::Request req;
  auto* cfg = req.mutable_apply_config()->mutable_config();
  for (int i = 0; i < 17; i++) cfg->add_include(std::string(1u << 20, 'i'));
  v1::Response resp;
  EXPECT_FALSE(c.call(req, &resp, &err, 3s));
  EXPECT_NE(err.find("exceeds"), std::string::npos) << err;
}

TEST(ControlServer, GarbageGetsAnErrorAndTheConnectionIsClosed) {
  TempDir d;
  Served s(opts(d));
  int fd = raw_connect(opts(d).path);
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.1\r\nHost: vanish\r\n\r\n");  // "GET " = 1.2 GB length
  auto r = read_response(fd);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->error().find("exceeds the limit"), std::string::npos) << r->error();
  EXPECT_TRUE(closed_by_peer(fd));
  ::close(fd);
  // The server goes on serving.
  ControlClient c;
  std::string err;
  v1::Request req = status_request(0);
  v1::Response resp;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  EXPECT_TRUE(c.call(req, &resp, &err, 3s)) << err;
  s.stop();
  EXPECT_EQ(s.server().stats().oversized, 1u);
}

TEST(ControlServer, OversizedLengthGetsAnErrorWithoutReadingTheBody) {
  TempDir d;
  ControlServerOptions o = opts(d);
  o.max_request = 1000;
  Served s(o);
  int fd = raw_connect(o.path);
  ASSERT_GE(fd, 0);
  send_all(fd, header(1001));
  auto r = read_response(fd);
  ASSERT_TRUE(r);
  EXPECT_NE(r->error().find("1001 bytes exceeds the limit of 1000"), std::string::npos)
      << r->error();
  EXPECT_TRUE(closed_by_peer(fd));
  ::close(fd);
}

TEST(ControlServer, MalformedProtobufGetsAnErrorAndTheConnectionStaysUsable) {
  TempDir d;
  Served s(opts(d));
  int fd = raw_connect(opts(d).path);
  ASSERT_GE(fd, 0);
  send_all(fd, header(5) + "\xff\xff\xff\xff\xff");
  auto r = read_response(fd);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->error().find("malformed"), std::string::npos) << r->error();
  // Empty frame: no command.
  send_all(fd, header(0));
  r = read_response(fd);
  ASSERT_TRUE(r);
  EXPECT_NE(r->error().find("no command"), std::string::npos) << r->error();
  send_all(fd, frame_of(status_request(9)));
  r = read_response(fd);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->id(), 9u);
  ::close(fd);
}

TEST(ControlServer, PipelinedRequestsAreAnsweredInOrder) {
  TempDir d;
  Served s(opts(d));
  int fd = raw_connect(opts(d).path);
  ASSERT_GE(fd, 0);
  send_all(fd,
           frame_of(status_request(1)) + frame_of(status_request(2)) + frame_of(status_request(3)));
  for (uint64_t id = 1; id <= 3; id++) {
    auto r = read_response(fd);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->id(), id);
  }
  ::close(fd);
}

TEST(ControlServer, TruncatedFrameIsDroppedWithItsConnection) {
  TempDir d;
  Served s(opts(d));
  int fd = raw_connect(opts(d).path);
  ASSERT_GE(fd, 0);
  std::string f = frame_of(status_request(1));
  send_all(fd, f.substr(0, f.size() - 1));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s.connections(), 1u);
  ::close(fd);
  for (int i = 0; i < 200 && s.connections() != 0; i++) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.connections(), 0u);
}

TEST(ControlServer, SlowClientIsClosedAtTheDeadline) {
  TempDir d;
  ControlServerOptions o = opts(d);
  o.io_timeout = 150ms;
  Served s(o);
  int fd = raw_connect(o.path);
  ASSERT_GE(fd, 0);
  std::string f = frame_of(status_request(1));
  auto t0 = std::chrono::steady_clock::now();
  send_all(fd, f.substr(0, 3));  // half a header, then nothing
  EXPECT_TRUE(closed_by_peer(fd, 3000ms));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 2000ms);
  ::close(fd);
  // An idle connection (nothing sent) is closed as well.
  fd = raw_connect(o.path);
  EXPECT_TRUE(closed_by_peer(fd, 3000ms));
  ::close(fd);
  s.stop();
  EXPECT_EQ(s.server().stats().timed_out, 2u);
}

TEST(ControlServer, ConnectionsBeyondTheLimitAreRefused) {
  TempDir d;
  ControlServerOptions o = opts(d);
  o.max_connections = 4;
  Served s(o);
  std::vector<int> fds;
  for (int i = 0; i < 4; i++) {
    fds.push_back(raw_connect(o.path));
    ASSERT_GE(fds.back(), 0);
  }
  for (int i = 0; i < 200 && s.connections() != 4; i++) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.connections(), 4u);
  int extra = raw_connect(o.path);
  ASSERT_GE(extra, 0);
  auto r = read_response(extra);
  ASSERT_TRUE(r);
  EXPECT_NE(r->error().find("too many"), std::string::npos) << r->error();
  EXPECT_TRUE(closed_by_peer(extra));
  ::close(extra);
  // The admitted ones still work.
  for (int fd : fds) {
    send_all(fd, frame_of(status_request(5)));
    auto ok = read_response(fd);
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->ok());
    ::close(fd);
  }
  // And after they are gone, a new one is admitted.
  for (int i = 0; i < 200 && s.connections() != 0; i++) std::this_thread::sleep_for(5ms);
  ControlClient c;
  std::string err;
  v1::Request req = status_request(0);
  v1::Response resp;
  ASSERT_TRUE(c.connect(o.path, &err)) << err;
  EXPECT_TRUE(c.call(req, &resp, &err, 3s)) << err;
  EXPECT_TRUE(resp.ok());
}

TEST(ControlServer, HandlerExceptionBecomesAnErrorResponse) {
  TempDir d;
  Served s(opts(d), [](const v1::Request&, v1::Response*) { throw std::runtime_error("boom"); });
  ControlClient c;
  std::string err;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  v1::Request req = status_request(0);
  v1::Response resp;
  ASSERT_TRUE(c.call(req, &resp, &err, 3s)) << err;
  EXPECT_FALSE(resp.ok());
  EXPECT_NE(resp.error().find("boom"), std::string::npos);
}

TEST(ControlClient, ReportsUnreachableServerAndTimeouts) {
  TempDir d;
  ControlClient c;
  std::string err;
  EXPECT_FALSE(c.connect(d.path() + "/none.sock", &err));
  EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;
  // A server that never answers: the call times out.
  ControlServer mute;
  ASSERT_TRUE(mute.open(opts(d), &err)) << err;
  ASSERT_TRUE(c.connect(opts(d).path, &err)) << err;
  v1::Request req = status_request(0);
  v1::Response resp;
  EXPECT_FALSE(c.call(req, &resp, &err, 100ms));
  EXPECT_NE(err.find("timed out"), std::string::npos) << err;
}

}  // namespace
}  // namespace vanish::ctl
