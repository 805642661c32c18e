#!/bin/sh
echo "bazel coverage is not supported: this offline build has no remote_coverage_tools." >&2
exit 1
