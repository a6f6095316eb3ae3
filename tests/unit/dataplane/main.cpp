// GoogleTest main for the data-plane fixtures: EAL up once per process, tests, EAL down.
#include <gtest/gtest.h>

#include "tests/unit/dataplane/fixture.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!vanish::test::eal_init(argv[0])) return 2;
  int rc = RUN_ALL_TESTS();
  vanish::test::eal_cleanup();
  return rc;
}
