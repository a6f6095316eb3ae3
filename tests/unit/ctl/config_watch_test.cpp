// ConfigWatch: modify, replace by rename, include change, half-written file (debounce), delete.
// Polls are driven with explicit times, so the tests do not sleep for the interval; file
// timestamps come from the filesystem, so each change also changes the size or the inode.
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include "ctl/config_watch.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

class Watch : public ::testing::Test {
 protected:
  Watch() : w_(200ms) {}
  // One poll 200 ms after the previous one.
  bool tick() {
    t_ += 200ms;
    return w_.poll(t_);
  }
  TempDir d_;
  ConfigWatch w_;
  ConfigWatch::Clock::time_point t_ = ConfigWatch::Clock::now();
};

TEST_F(Watch, NothingChangedNothingReported) {
  std::string f = d_.write("a.textproto", "this_node: \"a\"\n");
  w_.set_files({f});
  for (int i = 0; i < 5; i++) EXPECT_FALSE(tick());
}

TEST_F(Watch, ModifiedFileIsReportedOnceAfterItIsStable) {
  std::string f = d_.write("a.textproto", "this_node: \"a\"\n");
  w_.set_files({f});
  EXPECT_FALSE(tick());
  d_.write("a.textproto", "this_node: \"ab\"\n");
  EXPECT_FALSE(tick());  // seen, not yet stable
  EXPECT_TRUE(tick());   // unchanged for one interval: reported
  EXPECT_FALSE(tick());  // once
  EXPECT_FALSE(tick());
}

TEST_F(Watch, PollsMoreOftenThanTheIntervalDoNothing) {
  std::string f = d_.write("a.textproto", "x");
  w_.set_files({f});
  EXPECT_FALSE(tick());
  d_.write("a.textproto", "xy");
  EXPECT_FALSE(w_.poll(t_ + 10ms));  // too early: not even stat()ed
  EXPECT_FALSE(tick());              // first sight
  EXPECT_FALSE(w_.poll(t_ + 10ms));
  EXPECT_TRUE(tick());
}

TEST_F(Watch, HalfWrittenFileIsNotReportedUntilItStopsChanging) {
  std::string f = d_.write("a.textproto", "this_node: \"a\"\n");
  w_.set_files({f});
  FILE* fp = fopen(f.c_str(), "w");  // truncates: a change
  ASSERT_TRUE(fp);
  for (int i = 0; i < 4; i++) {
    fprintf(fp, "nodes { name: \"n%d\" }\n", i);
    fflush(fp);
    EXPECT_FALSE(tick()) << "reported while still being written (step " << i << ")";
  }
  fclose(fp);
  EXPECT_TRUE(tick());  // stable for one interval
  EXPECT_FALSE(tick());
}

TEST_F(Watch, ReplacedByRenameIsReported) {
  std::string f = d_.write("a.textproto", "this_node: \"a\"\n");
  w_.set_files({f});
  EXPECT_FALSE(tick());
  // Same size, new inode: what editors and `mv new old` do.
  std::string tmp = d_.write(".a.textproto.swp", "this_node: \"b\"\n");
  ASSERT_EQ(::rename(tmp.c_str(), f.c_str()), 0);
  EXPECT_FALSE(tick());
  EXPECT_TRUE(tick());
}

TEST_F(Watch, IncludeChangeIsReported) {
  std::string inc = d_.write("mesh.textproto", "nodes { name: \"a\" }\n");
  std::string top = d_.write("a.textproto", "include: \"mesh.textproto\"\nthis_node: \"a\"\n");
  config::Config cfg;
  std::vector<std::string> errors, files;
  ASSERT_TRUE(load_config(top, &cfg, &errors, &files)) << test::join(errors);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], top);
  w_.set_files(files);
  EXPECT_FALSE(tick());
  d_.write("mesh.textproto", "nodes { name: \"a\" }\nnodes { name: \"b\" }\n");
  EXPECT_FALSE(tick());
  EXPECT_TRUE(tick());
}

TEST_F(Watch, DeletedAndRecreatedFiles) {
  std::string f = d_.write("a.textproto", "x");
  w_.set_files({f});
  ASSERT_EQ(::unlink(f.c_str()), 0);
  EXPECT_FALSE(tick());
  EXPECT_TRUE(tick());  // gone: reported (the reload fails and is logged)
  EXPECT_FALSE(tick());
  d_.write("a.textproto", "xyz");
  EXPECT_FALSE(tick());
  EXPECT_TRUE(tick());
}

TEST_F(Watch, SetFilesKeepsTheReferenceOfKnownFiles) {
  std::string a = d_.write("a.textproto", "x");
  w_.set_files({a});
  d_.write("a.textproto", "xy");  // changed after the reference was taken
  std::string b = d_.write("b.textproto", "y");
  w_.set_files({a, b});  // a keeps its old reference: the change is still reported
  EXPECT_FALSE(tick());
  EXPECT_TRUE(tick());
}

TEST(LoaderFiles, FailedLoadStillListsWhatItTried) {
  TempDir d;
  std::string top = d.write("a.textproto", "include: \"missing.textproto\"\nthis_node: \"a\"\n");
  config::Config cfg;
  std::vector<std::string> errors, files;
  EXPECT_FALSE(load_config(top, &cfg, &errors, &files));
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[1], d.path() + "/missing.textproto");
}

}  // namespace
}  // namespace vanish::ctl
