// io/parallel: every index once, GRAFT_THREADS honoured, and a worker's exception reaches the
// caller (the lowest index's first) instead of ending the process.
#include "io/parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace graft::io {
namespace {

class ParallelTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("GRAFT_THREADS", "3", 1); }
  void TearDown() override { unsetenv("GRAFT_THREADS"); }
};

TEST_F(ParallelTest, GraftThreadsSetsTheWorkerCount) {
  EXPECT_EQ(worker_threads(), 3);
  setenv("GRAFT_THREADS", "0", 1);  // not a count: the hardware's
  EXPECT_EQ(worker_threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST_F(ParallelTest, ChunksCoverEveryIndexOnceInThreeContiguousPieces) {
  std::vector<int> seen(100, 0);
  std::mutex mutex;
  std::set<std::pair<std::int64_t, std::int64_t>> chunks;
  parallel_for(100, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) ++seen[static_cast<std::size_t>(i)];
    std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace(begin, end);
  });
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 100);
  EXPECT_EQ(chunks,
            (std::set<std::pair<std::int64_t, std::int64_t>>{{0, 34}, {34, 68}, {68, 100}}));
}

TEST_F(ParallelTest, EachIndexRunsOnceAndTheLowestFailureIsRethrownAfterAllFinish) {
  std::vector<std::atomic<int>> seen(50);
  try {
    parallel_for_each(50, [&](std::size_t i) {
      ++seen[i];
      if (i == 7 || i == 31) throw std::runtime_error("item " + std::to_string(i));
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "item 7");
  }
  for (auto& count : seen) EXPECT_EQ(count.load(), 1);
  EXPECT_THROW(parallel_for(9,
                            [](std::int64_t begin, std::int64_t) {
                              if (begin > 0) throw std::runtime_error("chunk");
                            }),
               std::runtime_error);
}

}  // namespace
}  // namespace graft::io
