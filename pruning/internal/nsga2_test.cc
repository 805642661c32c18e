#include "pruning/internal/nsga2.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/testing/test_seed.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

Fitness Point(double x, double y, double violation = 0) { return {{x, y}, violation}; }

TEST(Dominates, UsesConstrainedDomination) {
  EXPECT_TRUE(Dominates(Point(1, 1), Point(2, 2)));
  EXPECT_TRUE(Dominates(Point(1, 2), Point(1, 3)));
  EXPECT_FALSE(Dominates(Point(1, 3), Point(2, 2)));
  EXPECT_FALSE(Dominates(Point(1, 1), Point(1, 1)));
  // Feasible beats infeasible whatever the objectives.
  EXPECT_TRUE(Dominates(Point(9, 9), Point(0, 0, 0.1)));
  EXPECT_FALSE(Dominates(Point(0, 0, 0.1), Point(9, 9)));
  // Between infeasible solutions the smaller violation wins.
  EXPECT_TRUE(Dominates(Point(9, 9, 0.1), Point(0, 0, 0.2)));
}

TEST(NonDominatedSort, FindsFrontsInOrder) {
  const std::vector<Fitness> fitness = {Point(4, 4), Point(1, 5), Point(2, 3),     Point(3, 1),
                                        Point(2, 5), Point(3, 3), Point(0, 0, 1.0)};
  std::vector<int> rank;
  const std::vector<std::vector<int>> fronts = NonDominatedSort(fitness, &rank);
  ASSERT_EQ(fronts.size(), 4u);
  EXPECT_THAT(fronts[0], ElementsAre(1, 2, 3));
  EXPECT_THAT(fronts[1], ElementsAre(4, 5));
  EXPECT_THAT(fronts[2], ElementsAre(0));
  EXPECT_THAT(fronts[3], ElementsAre(6));
  EXPECT_THAT(rank, ElementsAre(2, 0, 0, 0, 1, 1, 3));
}

TEST(CrowdingDistance, ExtremesAreInfiniteAndInteriorNormalized) {
  const std::vector<Fitness> fitness = {Point(0, 4), Point(1, 3), Point(3, 1), Point(4, 0)};
  const std::vector<double> distance = CrowdingDistance(fitness, {0, 1, 2, 3});
  EXPECT_TRUE(std::isinf(distance[0]));
  EXPECT_TRUE(std::isinf(distance[3]));
  // Point 1: neighbours at x 0 and 3 (range 4) and y 4 and 1 (range 4): 3/4 + 3/4.
  EXPECT_DOUBLE_EQ(distance[1], 1.5);
  EXPECT_DOUBLE_EQ(distance[2], 1.5);
}

TEST(SelectSurvivors, TakesWholeFrontsThenMostCrowdingDistance) {
  const std::vector<Fitness> fitness = {Point(0, 10), Point(1, 9),  Point(1.1, 8.9),
                                        Point(5, 5),  Point(10, 0), Point(6, 6)};
  std::vector<int> rank;
  std::vector<double> crowding;
  const std::vector<int> survivors = SelectSurvivors(fitness, 4, &rank, &crowding);
  // Front 0 contains 0..4 (five points), so the crowded point 1 or 2 is dropped.
  ASSERT_EQ(survivors.size(), 4u);
  EXPECT_THAT(survivors, ::testing::IsSupersetOf({0, 3, 4}));
  EXPECT_EQ(rank[5], 1);
}

TEST(UniformCrossover, ChildrenTakeComplementaryGenes) {
  std::mt19937_64 rng(testing::TestSeed());
  const Genome a = {0, 1, 2, 3, 4, 5, 6, 7};
  const Genome b = {10, 11, 12, 13, 14, 15, 16, 17};
  Genome child_a;
  Genome child_b;
  UniformCrossover(a, b, 1.0, rng, &child_a, &child_b);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE((child_a[i] == a[i] && child_b[i] == b[i]) ||
                (child_a[i] == b[i] && child_b[i] == a[i]))
        << "gene " << i;
  }
  UniformCrossover(a, b, 0.0, rng, &child_a, &child_b);
  EXPECT_EQ(child_a, a);
  EXPECT_EQ(child_b, b);
}

TEST(Mutate, StaysInBoundsAndRespectsProbability) {
  std::mt19937_64 rng(testing::TestSeed());
  const std::vector<int> upper = {0, 1, 3, 20, 100};
  for (int trial = 0; trial < 200; ++trial) {
    Genome genome = {0, 1, 2, 10, 50};
    Mutate(upper, 1.0, rng, &genome);
    for (size_t i = 0; i < genome.size(); ++i) {
      EXPECT_GE(genome[i], 0);
      EXPECT_LE(genome[i], upper[i]);
    }
    EXPECT_EQ(genome[0], 0);
    EXPECT_LE(std::abs(genome[4] - 50), 25);
  }
  Genome unchanged = {0, 1, 2, 10, 50};
  Mutate(upper, 0.0, rng, &unchanged);
  EXPECT_EQ(unchanged, Genome({0, 1, 2, 10, 50}));
}

TEST(Tournament, SameSeedSameWinners) {
  auto better = [](int a, int b) { return a > b; };
  std::mt19937_64 first(42);
  std::mt19937_64 second(42);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Tournament(10, 3, first, better), Tournament(10, 3, second, better));
  }
}

}  // namespace
}  // namespace polaris::pruning::internal
