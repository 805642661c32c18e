"""Makes TorchScript models the way PyTorch users write them, for polaris's pruning tests.

Usage:
  make_pruning_models.py scripted OUT   a scripted residual CNN (torch.nn layers, Sequential,
                                        in-place ReLU, dropout, a view-based flatten)
  make_pruning_models.py traced OUT     the same network, traced
  make_pruning_models.py run MODEL      loads MODEL, runs it on a batch of 3 images and prints
                                        the output shape and the parameter count

Runs under Debian's python3-torch (PyTorch 1.13).
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity shortcut."""

    def __init__(self, channels):
        super().__init__()
        self.conv_a = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm_a = nn.BatchNorm2d(channels)
        self.conv_b = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm_b = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = F.relu(self.norm_a(self.conv_a(x)), inplace=True)
        y = self.norm_b(self.conv_b(y))
        return F.relu(y + x)


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(inplace=True))
        self.block = Block(12)
        self.widen = nn.Conv2d(12, 20, 3, padding=1)
        self.dropout = nn.Dropout(0.1)
        self.hidden = nn.Linear(20 * 7 * 7, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(self.block(self.stem(x)), 2)
        x = F.max_pool2d(F.relu(self.widen(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.hidden(self.dropout(x)))
        return self.head(x)


def make_model():
    torch.manual_seed(0)
    model = UserNet()
    # Non-trivial BatchNorm statistics, as a trained model has.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28))
    return model.eval()


def main():
    command = sys.argv[1]
    if command == "scripted":
        torch.jit.save(torch.jit.script(make_model()), sys.argv[2])
    elif command == "traced":
        model = make_model()
        torch.jit.save(torch.jit.trace(model, torch.randn(2, 1, 28, 28)), sys.argv[2])
    elif command == "run":
        model = torch.jit.load(sys.argv[2])
        model.eval()
        with torch.no_grad():
            output = model(torch.randn(3, 1, 28, 28))
        parameters = sum(p.numel() for p in model.parameters())
        print(f"{list(output.shape)} {parameters}")
    else:
        raise SystemExit(f"unknown command {command!r}; see the usage at the top of the file")


if __name__ == "__main__":
    main()
