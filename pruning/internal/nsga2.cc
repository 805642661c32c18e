#include "pruning/internal/nsga2.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace polaris::pruning::internal {

bool Dominates(const Fitness& a, const Fitness& b) {
  const bool a_feasible = a.violation <= 0;
  const bool b_feasible = b.violation <= 0;
  if (a_feasible != b_feasible) return a_feasible;
  if (!a_feasible) return a.violation < b.violation;
  bool strictly_better = false;
  for (size_t i = 0; i < a.objectives.size(); ++i) {
    if (a.objectives[i] > b.objectives[i]) return false;
    if (a.objectives[i] < b.objectives[i]) strictly_better = true;
  }
  return strictly_better;
}

std::vector<std::vector<int>> NonDominatedSort(const std::vector<Fitness>& fitness,
                                               std::vector<int>* rank) {
  const int n = static_cast<int>(fitness.size());
  std::vector<std::vector<int>> dominated(n);
  std::vector<int> domination_count(n, 0);
  rank->assign(n, 0);
  std::vector<std::vector<int>> fronts(1);
  for (int p = 0; p < n; ++p) {
    for (int q = 0; q < n; ++q) {
      if (p == q) continue;
      if (Dominates(fitness[p], fitness[q])) {
        dominated[p].push_back(q);
      } else if (Dominates(fitness[q], fitness[p])) {
        ++domination_count[p];
      }
    }
    if (domination_count[p] == 0) fronts[0].push_back(p);
  }
  for (size_t f = 0; f < fronts.size() && !fronts[f].empty(); ++f) {
    std::vector<int> next;
    for (int p : fronts[f]) {
      (*rank)[p] = static_cast<int>(f);
      for (int q : dominated[p]) {
        if (--domination_count[q] == 0) next.push_back(q);
      }
    }
    std::sort(next.begin(), next.end());
    if (!next.empty()) fronts.push_back(std::move(next));
  }
  if (fronts.back().empty()) fronts.pop_back();
  return fronts;
}

std::vector<double> CrowdingDistance(const std::vector<Fitness>& fitness,
                                     const std::vector<int>& front) {
  const size_t size = front.size();
  std::vector<double> distance(size, 0.0);
  if (size == 0) return distance;
  const double infinity = std::numeric_limits<double>::infinity();
  const size_t objectives = fitness[front[0]].objectives.size();
  std::vector<size_t> order(size);
  for (size_t m = 0; m < objectives; ++m) {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return fitness[front[a]].objectives[m] < fitness[front[b]].objectives[m];
    });
    const double low = fitness[front[order.front()]].objectives[m];
    const double high = fitness[front[order.back()]].objectives[m];
    distance[order.front()] = infinity;
    distance[order.back()] = infinity;
    if (high <= low) continue;
    for (size_t i = 1; i + 1 < size; ++i) {
      const double gap =
          fitness[front[order[i + 1]]].objectives[m] - fitness[front[order[i - 1]]].objectives[m];
      distance[order[i]] += gap / (high - low);
    }
  }
  return distance;
}

std::vector<int> SelectSurvivors(const std::vector<Fitness>& fitness, int count,
                                 std::vector<int>* rank, std::vector<double>* crowding) {
  const std::vector<std::vector<int>> fronts = NonDominatedSort(fitness, rank);
  crowding->assign(fitness.size(), 0.0);
  std::vector<int> survivors;
  for (const std::vector<int>& front : fronts) {
    const std::vector<double> distance = CrowdingDistance(fitness, front);
    for (size_t i = 0; i < front.size(); ++i) (*crowding)[front[i]] = distance[i];
    if (static_cast<int>(survivors.size()) >= count) continue;
    if (static_cast<int>(survivors.size() + front.size()) <= count) {
      survivors.insert(survivors.end(), front.begin(), front.end());
      continue;
    }
    std::vector<int> by_crowding = front;
    std::stable_sort(by_crowding.begin(), by_crowding.end(),
                     [&](int a, int b) { return (*crowding)[a] > (*crowding)[b]; });
    by_crowding.resize(count - survivors.size());
    survivors.insert(survivors.end(), by_crowding.begin(), by_crowding.end());
  }
  return survivors;
}

void UniformCrossover(const Genome& parent_a, const Genome& parent_b, double probability,
                      std::mt19937_64& rng, Genome* child_a, Genome* child_b) {
  *child_a = parent_a;
  *child_b = parent_b;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (uniform(rng) >= probability) return;
  for (size_t i = 0; i < parent_a.size(); ++i) {
    if (uniform(rng) < 0.5) std::swap((*child_a)[i], (*child_b)[i]);
  }
}

void Mutate(const std::vector<int>& upper, double probability, std::mt19937_64& rng,
            Genome* genome) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (size_t i = 0; i < genome->size(); ++i) {
    if (uniform(rng) >= probability || upper[i] == 0) continue;
    const int max_step = std::max(1, upper[i] / 4);
    std::uniform_int_distribution<int> step(1, max_step);
    const int magnitude = step(rng);
    const int direction = uniform(rng) < 0.5 ? -1 : 1;
    (*genome)[i] = std::clamp((*genome)[i] + direction * magnitude, 0, upper[i]);
  }
}

}  // namespace polaris::pruning::internal
