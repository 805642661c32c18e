#!/bin/sh
# Runs a Google Benchmark binary once with a short minimum time, so that `bazel test //...`
# proves every benchmark still builds and runs. Speed figures come from `bazel run`, not this.
binary="$1"
shift
exec "$binary" --benchmark_min_time=0.001 "$@"
