"""Makes TorchScript models the way PyTorch users do, for the model-level quantization tests,
and checks quantized files in Python.

Usage:
  make_test_models.py odd-cnn scripted|traced OUT
      a CNN with the odd channel counts structured pruning leaves (7, 13, 33), BatchNorm after
      every convolution and after a Linear layer (BatchNorm1d), a depthwise convolution, an
      in-place ReLU, a residual add and max pooling
  make_test_models.py unsupported scripted|traced OUT
      a CNN with a ConvTranspose2d and a LayerNorm, which int8 quantization must leave in float
  make_test_models.py fashion-mnist-test COUNT OUT
      torch.save((inputs, labels)) of the first COUNT Fashion-MNIST test images, normalized as
      polaris's loader does
  make_test_models.py predict MODEL DATA [OPS_LIBRARY]
      prints the class the TorchScript file MODEL predicts for each input in DATA (a file made by
      fashion-mnist-test), after torch.ops.load_library(OPS_LIBRARY) when given

Runs under Debian's python3-torch (PyTorch 1.13).
"""
import gzip
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class OddCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 7, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(7)
        self.depthwise = nn.Conv2d(7, 7, 3, padding=1, groups=7, bias=False)
        self.bn2 = nn.BatchNorm2d(7)
        self.conv3 = nn.Conv2d(7, 13, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(13)
        self.fc1 = nn.Linear(13 * 7 * 7, 33)
        self.bn4 = nn.BatchNorm1d(33)
        self.fc2 = nn.Linear(33, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(x + self.bn2(self.depthwise(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.bn4(self.fc1(x)))
        return self.fc2(x)


class WithUnsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.norm = nn.LayerNorm([4, 28, 28])
        self.fc = nn.Linear(4 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.norm(self.up(x))
        x = F.avg_pool2d(x, 4)
        return self.fc(torch.flatten(x, 1))


def with_statistics(model):
    """Gives BatchNorm layers non-trivial running statistics, as a trained model has."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28) * 1.5 + 0.2)
    return model.eval()


def save_model(model, how, out):
    if how == "scripted":
        torch.jit.script(model).save(out)
    elif how == "traced":
        torch.jit.trace(model, torch.randn(2, 1, 28, 28)).save(out)
    else:
        raise SystemExit("expected scripted or traced, got " + how)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find_idx(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise SystemExit("missing " + name + " in " + directory)


def fashion_mnist_test(count, out):
    directory = os.environ.get("POLARIS_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
    images = read_idx(find_idx(directory, "t10k-images-idx3-ubyte"))[:count]
    labels = read_idx(find_idx(directory, "t10k-labels-idx1-ubyte"))[:count]
    # The constants of polaris's loader (core/fashion_mnist.h).
    inputs = (images.float().div(255.0).sub(0.2860).div(0.3530)).unsqueeze(1)
    torch.save((inputs, labels.long()), out)


def predict(model_path, data_path, ops_library):
    if ops_library:
        torch.ops.load_library(ops_library)
    # Files with LibTorch's packed int8 weights repack them on load for the current engine.
    torch.backends.quantized.engine = "onednn"
    model = torch.jit.load(model_path).eval()
    inputs, _ = torch.load(data_path)
    with torch.no_grad():
        predictions = model(inputs).argmax(1)
    print(" ".join(str(int(p)) for p in predictions))


def main(argv):
    command = argv[1]
    if command == "odd-cnn":
        save_model(with_statistics(OddCnn()), argv[2], argv[3])
    elif command == "unsupported":
        torch.manual_seed(0)
        save_model(WithUnsupported().eval(), argv[2], argv[3])
    elif command == "fashion-mnist-test":
        fashion_mnist_test(int(argv[2]), argv[3])
    elif command == "predict":
        predict(argv[2], argv[3], argv[4] if len(argv) > 4 else "")
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
