#!/usr/bin/env bash
# Runs polaris's benchmarks optimized for this machine and appends their results to
# benchmarks/history.tsv, so speed can be tracked across commits:
#   benchmarks/record.sh                      every *_benchmark target
#   benchmarks/record.sh //sparse:kernels_benchmark --threads=2
# Each row: UTC time, git commit, CPU, target, benchmark name, real time (ns), and the
# benchmark's counters (speedup, GB/s, ...) as name=value pairs.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=()
args=()
for arg in "$@"; do
  if [[ "$arg" == //* ]]; then targets+=("$arg"); else args+=("$arg"); fi
done
if (( ${#targets[@]} == 0 )); then
  mapfile -t targets < <(./bazelw query 'kind(cc_binary, attr(name, "_benchmark$", //...))' 2>/dev/null)
fi
./bazelw build --config=opt "${targets[@]}"

commit="$(git describe --always --dirty 2>/dev/null || echo unknown)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
history="benchmarks/history.tsv"
[[ -f "$history" ]] || printf 'time\tcommit\tcpu\ttarget\tbenchmark\treal_time_ns\tcounters\n' > "$history"

for target in "${targets[@]}"; do
  binary="bazel-bin/$(echo "${target#//}" | tr ':' '/')"
  json="$(mktemp)"
  "$binary" --benchmark_format=console --benchmark_out="$json" --benchmark_out_format=json \
    "${args[@]+"${args[@]}"}"
  /usr/bin/python3 - "$json" "$target" "$commit" "$cpu" >> "$history" <<'PY'
import datetime, json, sys
path, target, commit, cpu = sys.argv[1:5]
report = json.load(open(path))
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
standard = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads",
            "iterations", "real_time", "cpu_time", "time_unit", "family_index",
            "per_family_instance_index", "aggregate_name", "aggregate_unit", "label"}
scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
for run in report.get("benchmarks", []):
    counters = " ".join(f"{key}={value:.6g}" for key, value in run.items()
                        if key not in standard and isinstance(value, (int, float)))
    real_ns = run["real_time"] * scale.get(run.get("time_unit", "ns"), 1)
    print(f"{now}\t{commit}\t{cpu}\t{target}\t{run['name']}\t{real_ns:.0f}\t{counters}")
PY
  rm -f "$json"
done
echo "appended results to $history"
