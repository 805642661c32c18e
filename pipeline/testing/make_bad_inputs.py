"""Makes the malformed models and data files the optimize command must reject.

Usage:
  make_bad_inputs.py OUT_DIR
      writes into OUT_DIR:
        tuple_output.pt   a scripted model whose forward returns (logits, features)
        two_inputs.pt     a scripted model whose forward takes two tensors
        wrong_shape.pt    torch.save((inputs, labels)) with 20x20 images
        bad_labels.pt     torch.save((inputs, labels)) with a label of 12 among 10 classes
        count_mismatch.pt torch.save((train_x, train_y, test_x, test_y)) with 100 training
                          inputs but 200 training labels

Runs under Debian's python3-torch (PyTorch 1.13).
"""
import os
import sys

import torch
import torch.nn as nn


class TupleOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        features = torch.flatten(x, 1)
        return self.fc(features), features


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x, y):
        return self.fc(torch.flatten(x, 1) + torch.flatten(y, 1))


def main(argv):
    out = argv[1]
    torch.manual_seed(0)
    torch.jit.script(TupleOutput()).save(os.path.join(out, "tuple_output.pt"))
    torch.jit.script(TwoInputs()).save(os.path.join(out, "two_inputs.pt"))
    torch.save((torch.randn(64, 1, 20, 20), torch.randint(0, 10, (64,))),
               os.path.join(out, "wrong_shape.pt"))
    labels = torch.randint(0, 10, (64,))
    labels[5] = 12
    torch.save((torch.randn(64, 1, 28, 28), labels), os.path.join(out, "bad_labels.pt"))
    torch.save((torch.randn(100, 1, 28, 28), torch.randint(0, 10, (200,)),
                torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
               os.path.join(out, "count_mismatch.pt"))


if __name__ == "__main__":
    main(sys.argv)
