#include "core/script_layers.h"

#include <cmath>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"

namespace polaris {
namespace {

void AddParameter(torch::jit::Module& module, const std::string& name, at::Tensor value) {
  value.set_requires_grad(true);
  module.register_parameter(name, value, /*is_buffer=*/false);
}

}  // namespace

torch::jit::Module MakeScriptModule(const CompilationUnitPtr& unit,
                                    const std::string& class_name) {
  torch::jit::Module module(absl::StrCat("__torch__.polaris.", class_name), unit,
                            /*shouldMangle=*/true);
  module.register_attribute("training", c10::BoolType::get(), true);
  return module;
}

torch::jit::Module MakeScriptLinear(const CompilationUnitPtr& unit, int64_t in_features,
                                    int64_t out_features, bool bias) {
  torch::jit::Module linear = MakeScriptModule(unit, "Linear");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  AddParameter(linear, "weight", at::empty({out_features, in_features}).uniform_(-bound, bound));
  if (bias) {
    AddParameter(linear, "bias", at::empty({out_features}).uniform_(-bound, bound));
    linear.define(R"(
def forward(self, input: Tensor) -> Tensor:
    return torch.linear(input, self.weight, self.bias)
)");
  } else {
    linear.define(R"(
def forward(self, input: Tensor) -> Tensor:
    return torch.linear(input, self.weight)
)");
  }
  return linear;
}

torch::jit::Module MakeScriptConv2d(const CompilationUnitPtr& unit, const Conv2dShape& shape) {
  torch::jit::Module conv = MakeScriptModule(unit, "Conv2d");
  const int64_t k = shape.kernel_size;
  const double fan_out = static_cast<double>(shape.out_channels * k * k);
  const double std = std::sqrt(2.0 / fan_out);
  AddParameter(conv, "weight",
               at::empty({shape.out_channels, shape.in_channels / shape.groups, k, k})
                   .normal_(0.0, std));
  std::string bias = "None";
  if (shape.bias) {
    AddParameter(conv, "bias", at::zeros({shape.out_channels}));
    bias = "self.bias";
  }
  conv.define(absl::Substitute(R"(
def forward(self, input: Tensor) -> Tensor:
    return torch.conv2d(input, self.weight, $0, [$1, $1], [$2, $2], [1, 1], $3)
)",
                               bias, shape.stride, shape.padding, shape.groups));
  return conv;
}

torch::jit::Module MakeScriptBatchNorm2d(const CompilationUnitPtr& unit, int64_t channels) {
  torch::jit::Module norm = MakeScriptModule(unit, "BatchNorm2d");
  AddParameter(norm, "weight", at::ones({channels}));
  AddParameter(norm, "bias", at::zeros({channels}));
  norm.register_buffer("running_mean", at::zeros({channels}));
  norm.register_buffer("running_var", at::ones({channels}));
  norm.define(R"(
def forward(self, input: Tensor) -> Tensor:
    return torch.batch_norm(input, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, 0.1, 1e-05, False)
)");
  return norm;
}

}  // namespace polaris
