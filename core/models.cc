#include "core/models.h"

#include <memory>

#include "ATen/Context.h"
#include "absl/strings/str_cat.h"
#include "core/script_layers.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

torch::jit::Module MakeMlp(const CompilationUnitPtr& unit) {
  torch::jit::Module model = MakeScriptModule(unit, "Mlp");
  model.register_module("fc1", MakeScriptLinear(unit, 784, 256, /*bias=*/true));
  model.register_module("fc2", MakeScriptLinear(unit, 256, 10, /*bias=*/true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    x = torch.flatten(x, 1)
    x = torch.relu(self.fc1.forward(x))
    return self.fc2.forward(x)
)");
  return model;
}

torch::jit::Module MakeLeNet(const CompilationUnitPtr& unit) {
  torch::jit::Module model = MakeScriptModule(unit, "LeNet");
  model.register_module("conv1", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 6,
                                                          .kernel_size = 5, .padding = 2}));
  model.register_module("conv2", MakeScriptConv2d(unit, {.in_channels = 6, .out_channels = 16,
                                                          .kernel_size = 5}));
  model.register_module("fc1", MakeScriptLinear(unit, 16 * 5 * 5, 120, /*bias=*/true));
  model.register_module("fc2", MakeScriptLinear(unit, 120, 84, /*bias=*/true));
  model.register_module("fc3", MakeScriptLinear(unit, 84, 10, /*bias=*/true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    x = torch.max_pool2d(torch.relu(self.conv1.forward(x)), [2, 2])
    x = torch.max_pool2d(torch.relu(self.conv2.forward(x)), [2, 2])
    x = torch.flatten(x, 1)
    x = torch.relu(self.fc1.forward(x))
    x = torch.relu(self.fc2.forward(x))
    return self.fc3.forward(x)
)");
  return model;
}

// A ResNet basic block: two 3x3 convolutions with BatchNorm and a shortcut, which is a 1x1
// convolution with BatchNorm when the shape changes.
torch::jit::Module MakeBasicBlock(const CompilationUnitPtr& unit, int64_t in_channels,
                                  int64_t out_channels, int64_t stride) {
  torch::jit::Module block = MakeScriptModule(unit, "BasicBlock");
  block.register_module("conv1", MakeScriptConv2d(unit, {.in_channels = in_channels,
                                                          .out_channels = out_channels,
                                                          .kernel_size = 3,
                                                          .stride = stride,
                                                          .padding = 1,
                                                          .bias = false}));
  block.register_module("bn1", MakeScriptBatchNorm2d(unit, out_channels));
  block.register_module("conv2", MakeScriptConv2d(unit, {.in_channels = out_channels,
                                                          .out_channels = out_channels,
                                                          .kernel_size = 3,
                                                          .padding = 1,
                                                          .bias = false}));
  block.register_module("bn2", MakeScriptBatchNorm2d(unit, out_channels));
  if (stride == 1 && in_channels == out_channels) {
    block.define(R"(
def forward(self, x: Tensor) -> Tensor:
    out = torch.relu(self.bn1.forward(self.conv1.forward(x)))
    out = self.bn2.forward(self.conv2.forward(out))
    return torch.relu(out + x)
)");
    return block;
  }
  block.register_module("shortcut_conv", MakeScriptConv2d(unit, {.in_channels = in_channels,
                                                                  .out_channels = out_channels,
                                                                  .kernel_size = 1,
                                                                  .stride = stride,
                                                                  .bias = false}));
  block.register_module("shortcut_bn", MakeScriptBatchNorm2d(unit, out_channels));
  block.define(R"(
def forward(self, x: Tensor) -> Tensor:
    out = torch.relu(self.bn1.forward(self.conv1.forward(x)))
    out = self.bn2.forward(self.conv2.forward(out))
    return torch.relu(out + self.shortcut_bn.forward(self.shortcut_conv.forward(x)))
)");
  return block;
}

torch::jit::Module MakeResidualCnn(const CompilationUnitPtr& unit) {
  torch::jit::Module model = MakeScriptModule(unit, "ResidualCnn");
  model.register_module("conv1", MakeScriptConv2d(unit, {.in_channels = 1,
                                                          .out_channels = 32,
                                                          .kernel_size = 3,
                                                          .padding = 1,
                                                          .bias = false}));
  model.register_module("bn1", MakeScriptBatchNorm2d(unit, 32));
  model.register_module("layer1", MakeBasicBlock(unit, 32, 32, /*stride=*/1));
  model.register_module("layer2", MakeBasicBlock(unit, 32, 64, /*stride=*/2));
  model.register_module("fc", MakeScriptLinear(unit, 64 * 7 * 7, 10, /*bias=*/true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    x = torch.relu(self.bn1.forward(self.conv1.forward(x)))
    x = self.layer1.forward(x)
    x = self.layer2.forward(x)
    x = torch.avg_pool2d(x, [2, 2])
    x = torch.flatten(x, 1)
    return self.fc.forward(x)
)");
  return model;
}

}  // namespace

absl::StatusOr<ReferenceModel> ParseReferenceModel(absl::string_view name) {
  if (name == "mlp") return ReferenceModel::kMlp;
  if (name == "lenet") return ReferenceModel::kLeNet;
  if (name == "cnn") return ReferenceModel::kResidualCnn;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reference model '", name, "'; use mlp, lenet or cnn"));
}

std::string ReferenceModelName(ReferenceModel model) {
  switch (model) {
    case ReferenceModel::kMlp: return "mlp";
    case ReferenceModel::kLeNet: return "lenet";
    case ReferenceModel::kResidualCnn: return "cnn";
  }
  return "unknown";
}

std::vector<int64_t> FashionMnistExampleShape() { return {1, 28, 28}; }

absl::StatusOr<torch::jit::Module> MakeReferenceModel(ReferenceModel model, uint64_t seed) {
  return CallTorch(absl::StrCat("building the ", ReferenceModelName(model), " model"), [&] {
    at::manual_seed(seed);
    auto unit = std::make_shared<torch::jit::CompilationUnit>();
    switch (model) {
      case ReferenceModel::kMlp: return MakeMlp(unit);
      case ReferenceModel::kLeNet: return MakeLeNet(unit);
      case ReferenceModel::kResidualCnn: break;
    }
    return MakeResidualCnn(unit);
  });
}

}  // namespace polaris
