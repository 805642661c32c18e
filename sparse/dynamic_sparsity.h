// Dynamic sparse training: a network is trained sparse from scratch while its connectivity
// changes, so it never needs a dense pre-trained model.
//
//   SET   (Mocanu et al. 2018, "Scalable training of artificial neural networks with adaptive
//         sparse connectivity inspired by network science"): every update_interval steps,
//         drop the active weights of smallest magnitude and regrow as many at random.
//   RigL  (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners"): drop the same
//         way, regrow the inactive connections with the largest dense-gradient magnitude. The
//         drop fraction decays with a cosine schedule, f(t) = alpha / 2 * (1 + cos(pi t / T_end)),
//         and updates stop at T_end.
//
// Both keep each layer's number of active weights constant. Newly grown connections start at
// zero, as RigL specifies; Mocanu et al. drew SET's new weights at random, which this code
// does not do. Layer sparsities follow the uniform or the Erdos-Renyi-Kernel distribution
// (Evci et al. 2020): a layer's density is proportional to the sum of its weight's dimensions
// divided by their product, and layers that would exceed density 1 are kept dense.
//
// It runs inside core's Train through the after_backward hook (mask updates from the dense
// gradient, then gradients of inactive weights zeroed) and the after_step hook (inactive
// weights set back to zero, since momentum and weight decay could move them).
//
//   DynamicSparsityOptions sparse;  // RigL, 90%, Erdos-Renyi-Kernel
//   POLARIS_ASSIGN_OR_RETURN(DynamicSparseTrainingResult trained,
//                            TrainDynamicSparse(model, train_data, train_options, sparse));
#ifndef POLARIS_SPARSE_DYNAMIC_SPARSITY_H_
#define POLARIS_SPARSE_DYNAMIC_SPARSITY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/trainer.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::sparse {

enum class DynamicSparsityMethod {
  // A fixed random mask, never updated: the baseline that SET and RigL improve on.
  kStatic,
  kSet,
  kRigL,
};

enum class SparsityDistribution {
  // Every sparsified layer gets the target sparsity.
  kUniform,
  // Erdos-Renyi-Kernel: small layers denser, large ones sparser, same total.
  kErdosRenyiKernel,
};

enum class DropSchedule {
  // f(t) = drop_fraction / 2 * (1 + cos(pi t / T_end)), as in RigL.
  kCosine,
  // f(t) = drop_fraction, as in the original SET.
  kConstant,
};

// Returns "static", "set", "rigl" / "uniform", "erk" / "cosine", "constant".
std::string MethodName(DynamicSparsityMethod method);
std::string DistributionName(SparsityDistribution distribution);
std::string DropScheduleName(DropSchedule schedule);

struct DynamicSparsityOptions {
  DynamicSparsityMethod method = DynamicSparsityMethod::kRigL;
  // Fraction of zeros over the weights of all sparsified layers, in [0, 1).
  double sparsity = 0.9;
  SparsityDistribution distribution = SparsityDistribution::kErdosRenyiKernel;
  // Steps between mask updates (Delta T); RigL used 100 for ImageNet and CIFAR.
  int64_t update_interval = 100;
  // Initial fraction of each layer's active weights dropped and regrown per update (alpha).
  double drop_fraction = 0.3;
  DropSchedule drop_schedule = DropSchedule::kCosine;
  // Updates stop at T_end = end_step when positive, else end_fraction of the training steps
  // (RigL: 0.75).
  int64_t end_step = 0;
  double end_fraction = 0.75;
  // Seed of the initial masks and of SET's random regrowth.
  uint64_t seed = 1;
  // Module paths of Linear or Conv2d layers to keep dense ("fc2").
  std::vector<std::string> dense_layers;
  // Shape of one input example without the batch dimension, used to find the layers.
  std::vector<int64_t> example_shape = {1, 28, 28};
};

// Returns the density (1 - sparsity) of each layer with weight shapes `shapes` so that the
// layers together keep (1 - sparsity) of their weights. Errors: kInvalidArgument when sparsity
// lies outside [0, 1) or a shape is empty or has a non-positive dimension.
absl::StatusOr<std::vector<double>> LayerDensities(const std::vector<std::vector<int64_t>>& shapes,
                                                   double sparsity,
                                                   SparsityDistribution distribution);

// One sparsified layer.
struct SparseLayerState {
  std::string layer;        // module path, "fc1"
  std::string weight_path;  // "fc1.weight"
  at::Tensor weight;        // the parameter itself, shared with the model
  at::Tensor mask;          // bool, weight's shape; true = active
  int64_t active = 0;       // active weights, constant through training
  double target_sparsity = 0;
};

// Keeps the masks of one model during training. The model must outlive this object.
class DynamicSparsity {
 public:
  // Finds the Linear and Conv2d weights of `model` (except options.dense_layers), draws random
  // masks with the distribution's densities and zeroes the inactive weights of `model` in
  // place. `total_steps` is the number of optimizer steps training will run.
  // Errors: kInvalidArgument for options out of range (sparsity outside [0, 1),
  // update_interval < 1, drop_fraction outside (0, 1], end_fraction outside (0, 1],
  // total_steps < 1), for a model with no Linear or Conv2d layer to sparsify, or for a
  // dense_layers entry that names no such layer.
  static absl::StatusOr<std::unique_ptr<DynamicSparsity>> Create(
      torch::jit::Module& model, const DynamicSparsityOptions& options, int64_t total_steps);

  // Chains this object's hooks after any hooks already in `options`.
  void InstallHooks(TrainOptions& options);

  // Updates the masks at update steps (0 < step < T_end, step a multiple of update_interval),
  // setting newly grown weights to zero, then zeroes the gradients of inactive weights.
  absl::Status AfterBackward(int64_t step);
  // Sets inactive weights to zero.
  absl::Status AfterStep(int64_t step);

  // Fraction of active weights dropped (and regrown) at `step`; 0 from T_end on.
  double DropFraction(int64_t step) const;
  int64_t end_step() const { return end_step_; }

  const std::vector<SparseLayerState>& layers() const { return layers_; }
  // Mask updates done so far, and connections grown that were inactive before their update.
  int64_t updates() const { return updates_; }
  int64_t grown_connections() const { return grown_connections_; }

 private:
  DynamicSparsity(const DynamicSparsityOptions& options, int64_t end_step)
      : options_(options), end_step_(end_step) {}

  // Drops `count` active weights of smallest magnitude and grows `count` inactive ones chosen
  // by the method (gradient magnitude or random). Returns how many grown ones were new.
  int64_t UpdateLayer(SparseLayerState& layer, int64_t count);

  DynamicSparsityOptions options_;
  int64_t end_step_ = 0;
  std::vector<SparseLayerState> layers_;
  int64_t updates_ = 0;
  int64_t grown_connections_ = 0;
  uint64_t random_draws_ = 0;
};

struct SparseLayerReport {
  std::string layer;
  int64_t parameters = 0;
  double target_sparsity = 0;
  // Fraction of exact zeros in the trained weight.
  double final_sparsity = 0;
};

struct DynamicSparseTrainingResult {
  // The trained copy; its inactive weights are exactly zero.
  torch::jit::Module model;
  TrainResult training;
  std::vector<SparseLayerReport> layers;
  int64_t updates = 0;
  int64_t grown_connections = 0;
  // Zeros over all sparsified weights.
  double overall_sparsity = 0;
};

// Returns a copy of `model` whose parameters are leaf tensors with the original's
// requires_grad, which torch::optim needs ("can't optimize a non-leaf Tensor"). Module::clone
// in LibTorch 1.13 copies parameters while autograd records; core's CloneModel now avoids
// that, and this function also detaches any parameter that still has a grad_fn.
// Errors: those of CloneModel.
absl::StatusOr<torch::jit::Module> CopyForTraining(const torch::jit::Module& model);

// Trains a copy of `model` on `data` with `train_options` (their hooks still run, before this
// method's) while `options` keeps it sparse. `model` is not modified.
// Errors: those of DynamicSparsity::Create and of Train.
absl::StatusOr<DynamicSparseTrainingResult> TrainDynamicSparse(
    const torch::jit::Module& model, const LabeledData& data, const TrainOptions& train_options,
    const DynamicSparsityOptions& options);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_DYNAMIC_SPARSITY_H_
