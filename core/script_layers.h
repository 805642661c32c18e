// Builders for TorchScript modules equivalent to torch.nn.Linear, Conv2d and BatchNorm2d,
// written in C++ so that polaris's reference models have the same structure as scripted
// PyTorch models: a submodule per layer holding `weight` and `bias` parameters, whose forward
// calls aten::linear, aten::conv2d or aten::batch_norm. Everything that analyses or rewrites a
// user's model therefore sees reference models the same way.
//
//   auto unit = std::make_shared<torch::jit::CompilationUnit>();
//   torch::jit::Module fc = MakeScriptLinear(unit, 784, 256, /*bias=*/true);
//   parent.register_module("fc1", fc);
//
// Parameters are initialized from LibTorch's global generator; seed it first
// (torch::manual_seed) for reproducible weights. Every builder registers the `training`
// attribute that Module::train() and eval() require. They throw c10::Error on LibTorch failures.
#ifndef POLARIS_CORE_SCRIPT_LAYERS_H_
#define POLARIS_CORE_SCRIPT_LAYERS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "torch/csrc/jit/api/module.h"

namespace polaris {

using CompilationUnitPtr = std::shared_ptr<torch::jit::CompilationUnit>;

// Creates an empty module of class `__torch__.polaris.<class_name>` in `unit`, with the
// `training` attribute set to true.
torch::jit::Module MakeScriptModule(const CompilationUnitPtr& unit, const std::string& class_name);

// y = x W^T + b with W [out_features, in_features]. Initialized like torch.nn.Linear:
// uniform in +-1/sqrt(in_features).
torch::jit::Module MakeScriptLinear(const CompilationUnitPtr& unit, int64_t in_features,
                                    int64_t out_features, bool bias);

struct Conv2dShape {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t kernel_size = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;
  bool bias = true;
};

// 2-D convolution, weight [out, in / groups, k, k]. Initialized with Kaiming-normal (fan out,
// ReLU gain), as torchvision's ResNets are; bias zero.
torch::jit::Module MakeScriptConv2d(const CompilationUnitPtr& unit, const Conv2dShape& shape);

// Batch normalization over channels with momentum 0.1 and eps 1e-5, as torch.nn.BatchNorm2d:
// learnable `weight` (1) and `bias` (0), buffers `running_mean` (0) and `running_var` (1).
torch::jit::Module MakeScriptBatchNorm2d(const CompilationUnitPtr& unit, int64_t channels);

}  // namespace polaris

#endif  // POLARIS_CORE_SCRIPT_LAYERS_H_
