"""Quantizes polaris's residual Fashion-MNIST CNN with PyTorch's own FX workflow, the reference
that polaris's static int8 conversion is compared with.

Usage:
  fx_reference.py MODEL CALIBRATION OUT
    MODEL        the CNN as TorchScript (core/models.h "cnn", trained by core's model zoo)
    CALIBRATION  a tensor of calibration inputs [N, 1, 28, 28] saved with torch::pickle_save
    OUT          where to write the int8 model: torch.jit.script of the FX-converted model,
                 frozen, as a user deploys it

The script copies the TorchScript model's weights into an eager nn.Module of the same
architecture (FX traces Python code, not TorchScript), checks that both compute the same
logits, and runs prepare_fx / calibration / convert_fx with the default "onednn" QConfigMapping
of PyTorch 1.13: per-channel symmetric int8 weights and HistogramObserver uint8 activations.

Runs under Debian's python3-torch (PyTorch 1.13).
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class ProjectionBlock(BasicBlock):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut_bn(self.shortcut_conv(x)))


class ResidualCnn(nn.Module):
    """The architecture of core/models.cc's residual CNN, with the same parameter names."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layer1 = BasicBlock(32, 32, 1)
        self.layer2 = ProjectionBlock(32, 64, 2)
        self.fc = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = F.avg_pool2d(x, 2)
        return self.fc(torch.flatten(x, 1))


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    model_path, calibration_path, out_path = argv[1:]
    torch.backends.quantized.engine = "onednn"

    scripted = torch.jit.load(model_path).eval()
    model = ResidualCnn().eval()
    missing, unexpected = model.load_state_dict(scripted.state_dict(), strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise SystemExit(f"weights do not match: missing {missing}, unexpected {unexpected}")

    calibration = torch.load(calibration_path)
    with torch.no_grad():
        reference = scripted(calibration[:256])
        eager = model(calibration[:256])
    difference = (reference - eager).abs().max().item()
    if difference > 1e-4 * max(1.0, reference.abs().max().item()):
        raise SystemExit(f"the eager copy differs from the TorchScript model by {difference}")

    prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), (calibration[:1],))
    with torch.no_grad():
        for batch in calibration.split(256):
            prepared(batch)
    quantized = convert_fx(prepared)
    torch.jit.freeze(torch.jit.script(quantized).eval()).save(out_path)


if __name__ == "__main__":
    main(sys.argv)
