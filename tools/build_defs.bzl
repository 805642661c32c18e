"""Rule wrappers that keep polaris's compiler flags and test settings in one place.

Every package uses these macros instead of the native rules, so a flag changes here once.
"""

# Flags for all polaris code.
POLARIS_COPTS = [
    # Warnings worth reading; LibTorch's own headers are system headers and stay quiet.
    "-Wall",
    "-Wextra",
    # Comparisons of int64_t sizes with size_t loop counters are pervasive in tensor code.
    "-Wno-sign-compare",
    # Unused parameters are common in interfaces that match LibTorch operator schemas.
    "-Wno-unused-parameter",
    "-Werror=return-type",
]

# Flags for kernels written for Zen 4 / Ice Lake class CPUs. Only libraries made with
# polaris_cc_avx512_library get them, and their callers check the CPU at run time
# (core:cpu_features) before calling into them, so the binaries still run on older x86-64.
AVX512_COPTS = [
    "-mavx2",
    "-mfma",
    "-mf16c",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512dq",
    "-mavx512vl",
    "-mavx512vnni",
    "-mavx512bf16",
]

def polaris_cc_library(name, copts = [], **kwargs):
    """A cc_library with the project's flags."""
    native.cc_library(name = name, copts = POLARIS_COPTS + copts, **kwargs)

def polaris_cc_avx512_library(name, copts = [], **kwargs):
    """A cc_library of AVX-512 kernels; callers must check core:cpu_features first."""
    native.cc_library(name = name, copts = POLARIS_COPTS + AVX512_COPTS + copts, **kwargs)

def polaris_cc_binary(name, copts = [], **kwargs):
    """A cc_binary with the project's flags."""
    native.cc_binary(name = name, copts = POLARIS_COPTS + copts, **kwargs)

def polaris_cc_test(name, deps = [], copts = [], **kwargs):
    """A GoogleTest test. Its main prints the random seed so a failure can be reproduced."""
    native.cc_test(
        name = name,
        copts = POLARIS_COPTS + copts,
        deps = deps + [
            "//core:test_main",
            "//third_party:gtest",
        ],
        **kwargs
    )

def polaris_cc_benchmark(name, deps = [], copts = [], tags = [], **kwargs):
    """A Google Benchmark binary plus `<name>_once`, a test that runs it once.

    `bazel run -c opt //pkg:name` measures; `bazel test //...` runs `name_once` so the
    benchmark cannot rot unnoticed.
    """
    native.cc_binary(
        name = name,
        copts = POLARIS_COPTS + copts,
        deps = deps + [
            "//core:benchmark_main",
            "//third_party:benchmark",
        ],
        tags = tags,
        **kwargs
    )
    native.sh_test(
        name = name + "_once",
        srcs = ["//tools:run_benchmark_once.sh"],
        args = ["$(location :%s)" % name],
        data = [":" + name],
        tags = tags + ["benchmark_once"],
        size = "large",
    )
