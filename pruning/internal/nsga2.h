// The selection machinery of NSGA-II (Deb, Pratap, Agarwal and Meyarivan 2002, "A fast and
// elitist multiobjective genetic algorithm: NSGA-II", IEEE Transactions on Evolutionary
// Computation 6(2)) and the genetic operators of polaris's pruning search, on plain vectors so
// they can be tested without models.
//
// Every objective is minimized (callers negate accuracy). Constraints use the paper's
// constrained domination: a feasible solution (violation 0) dominates an infeasible one, and
// of two infeasible solutions the one with the smaller total violation dominates.
#ifndef POLARIS_PRUNING_INTERNAL_NSGA2_H_
#define POLARIS_PRUNING_INTERNAL_NSGA2_H_

#include <cstdint>
#include <random>
#include <vector>

namespace polaris::pruning::internal {

struct Fitness {
  // Objective values, all minimized.
  std::vector<double> objectives;
  // Total constraint violation; 0 means feasible.
  double violation = 0;
};

// True when `a` constrained-dominates `b`.
bool Dominates(const Fitness& a, const Fitness& b);

// Sorts solutions into non-dominated fronts (the paper's fast non-dominated sort). Returns the
// fronts, best first, each a list of indices into `fitness` in ascending order; `rank[i]` is
// the front index of solution i.
std::vector<std::vector<int>> NonDominatedSort(const std::vector<Fitness>& fitness,
                                               std::vector<int>* rank);

// Crowding distance of each member of one front (indices into `fitness`), in the order of
// `front`: the sum over objectives of the normalized gap between a member's two neighbours;
// the extreme members of each objective get infinity.
std::vector<double> CrowdingDistance(const std::vector<Fitness>& fitness,
                                     const std::vector<int>& front);

// Picks `count` survivors from `fitness`: whole fronts in rank order, then the members of the
// first front that does not fit with the largest crowding distance (ties by index). Fills
// `rank` and `crowding` for every solution. Returns indices in selection order.
std::vector<int> SelectSurvivors(const std::vector<Fitness>& fitness, int count,
                                 std::vector<int>* rank, std::vector<double>* crowding);

// Integer genes with per-gene inclusive upper bounds (lower bound 0).
using Genome = std::vector<int>;

// Returns the winner of a tournament of `size` members drawn with replacement from
// [0, population); `better(a, b)` returns whether a beats b.
template <typename Better>
int Tournament(int population, int size, std::mt19937_64& rng, Better better) {
  std::uniform_int_distribution<int> pick(0, population - 1);
  int winner = pick(rng);
  for (int i = 1; i < size; ++i) {
    const int challenger = pick(rng);
    if (better(challenger, winner)) winner = challenger;
  }
  return winner;
}

// Uniform crossover: with `probability` each gene comes from either parent with equal
// chance (the two children take opposite parents); otherwise the children copy the parents.
void UniformCrossover(const Genome& parent_a, const Genome& parent_b, double probability,
                      std::mt19937_64& rng, Genome* child_a, Genome* child_b);

// Mutates each gene with `probability`: it moves by a uniform step in [-max_step, max_step]
// (not 0), scaled to the gene's range (max_step = max(1, upper / 4)), clamped to [0, upper].
void Mutate(const std::vector<int>& upper, double probability, std::mt19937_64& rng,
            Genome* genome);

}  // namespace polaris::pruning::internal

#endif  // POLARIS_PRUNING_INTERNAL_NSGA2_H_
