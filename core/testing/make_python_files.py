"""Makes files the way PyTorch users do, for polaris's interoperability tests.

Usage:
  make_python_files.py scripted-model OUT    a scripted CNN with BatchNorm and a residual add
  make_python_files.py traced-model OUT      the same network, traced
  make_python_files.py two-outputs OUT       a scripted model whose forward returns a tuple
  make_python_files.py state-dict OUT        torch.save of a state dict (not TorchScript)
  make_python_files.py labeled-pair OUT      torch.save((inputs, labels))
  make_python_files.py labeled-four OUT      torch.save((x_train, y_train, x_test, y_test))
  make_python_files.py labeled-dict OUT      torch.save({"train": (...), "test": (...)})
  make_python_files.py labeled-bad OUT       torch.save((inputs, float labels))
  make_python_files.py predict MODEL DATA    prints the predicted class of each example of
                                             DATA (a labeled-pair file) under MODEL
  make_python_files.py predict-with-ops LIB MODEL DATA
                                             the same after torch.ops.load_library(LIB)

Runs under Debian's python3-torch (PyTorch 1.13).
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class SmallNet(nn.Module):
    """A user's custom Fashion-MNIST network: conv, BatchNorm, a residual block, pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block = ResidualBlock(8)
        self.head = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 2)
        x = F.max_pool2d(self.block(x), 2)
        return self.head(torch.flatten(x, 1))


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        y = self.fc(torch.flatten(x, 1))
        return y, y.softmax(1)


def make_model():
    torch.manual_seed(0)
    model = SmallNet()
    # Non-trivial BatchNorm statistics, as a trained model has.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28))
    return model.eval()


def labeled(n, seed):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return inputs, labels


def predict(model_path, data_path):
    model = torch.jit.load(model_path).eval()
    inputs, _ = torch.load(data_path)
    with torch.no_grad():
        predictions = model(inputs).argmax(1)
    print(" ".join(str(int(p)) for p in predictions))


def main(argv):
    command = argv[1]
    if command == "predict":
        predict(argv[2], argv[3])
        return
    if command == "predict-with-ops":
        torch.ops.load_library(argv[2])
        predict(argv[3], argv[4])
        return
    out = argv[2]
    if command == "scripted-model":
        torch.jit.script(make_model()).save(out)
    elif command == "traced-model":
        torch.jit.trace(make_model(), torch.randn(1, 1, 28, 28)).save(out)
    elif command == "two-outputs":
        torch.jit.script(TwoOutputs()).save(out)
    elif command == "state-dict":
        torch.save(make_model().state_dict(), out)
    elif command == "labeled-pair":
        torch.save(labeled(32, 1), out)
    elif command == "labeled-four":
        torch.save(labeled(48, 2) + labeled(16, 3), out)
    elif command == "labeled-dict":
        torch.save({"train": labeled(40, 4), "test": labeled(8, 5)}, out)
    elif command == "labeled-bad":
        inputs, labels = labeled(8, 6)
        torch.save((inputs, labels.float()), out)
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
