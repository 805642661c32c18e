"""Checks polaris's quantization operators in Python against results computed in C++.

Usage: check_ops.py LIBRARY CASES
  LIBRARY  libpolaris_quantization_ops.so
  CASES    a TorchScript module saved by ops_python_test whose buffers hold each op's inputs
           and the output C++ computed for them

Prints one line per op and exits with status 1 when an output differs. Runs under Debian's
python3-torch (PyTorch 1.13).
"""
import sys

import torch


def main():
    library, cases_path = sys.argv[1], sys.argv[2]
    torch.ops.load_library(library)
    cases = torch.jit.load(cases_path)
    ops = torch.ops.polaris
    failures = 0

    def check(name, actual, expected):
        nonlocal failures
        same = actual.shape == expected.shape and torch.equal(actual, expected)
        print(f"{name}: {'same' if same else 'DIFFERENT'} {tuple(actual.shape)}")
        if not same:
            failures += 1
            print(f"  max difference {(actual.float() - expected.float()).abs().max().item()}")

    check("quant_linear_int8",
          ops.quant_linear_int8(cases.x, cases.w_int8, cases.w_scale, cases.bias,
                                float(cases.input_scale.item()), int(cases.input_zero_point.item())),
          cases.int8_static)
    check("quant_linear_int8_dynamic",
          ops.quant_linear_int8_dynamic(cases.x, cases.w_int8, cases.w_scale, cases.bias),
          cases.int8_dynamic)
    check("quant_linear_int4",
          ops.quant_linear_int4(cases.x, cases.packed, cases.int4_scale, cases.int4_zero_point,
                                int(cases.group_size.item()), None),
          cases.int4)
    quantized = ops.quant_quantize_per_tensor(cases.x, 0.03, 120)
    check("quant_quantize_per_tensor", quantized.int_repr(), cases.quantized)
    check("quant_dequantize", ops.quant_dequantize(quantized), cases.dequantized)
    image = torch._make_per_tensor_quantized_tensor(cases.image, 0.004, 0)
    conv = ops.quant_conv2d_int8(image, cases.conv_weight, cases.conv_scale, None, [1, 1],
                                 [1, 1], [1, 1], 1, 0.02, 10, True)
    check("quant_conv2d_int8", conv.int_repr().contiguous(), cases.conv)

    # The ops compile into TorchScript, as in the files the model-level conversion writes.
    @torch.jit.script
    def scripted(x, w, s, b):
        return torch.ops.polaris.quant_linear_int8_dynamic(x, w, s, b)

    check("scripted quant_linear_int8_dynamic",
          scripted(cases.x, cases.w_int8, cases.w_scale, cases.bias), cases.int8_dynamic)

    try:
        ops.quant_linear_int4(cases.x, cases.packed, cases.int4_scale, cases.int4_zero_point, 5,
                              None)
        print("bad group size: accepted")
        failures += 1
    except RuntimeError as error:
        print("bad group size: RuntimeError:", str(error).splitlines()[0])

    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
