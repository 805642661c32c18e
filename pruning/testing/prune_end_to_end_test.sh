#!/usr/bin/env bash
# End-to-end check of //pruning:prune as a user runs it: a scripted torch.nn model and a
# torch.save data file made in Python, a text config, then the pruned file loaded back and run
# in Python. Also checks that a bad config fails with a clear message and writes nothing.
set -euo pipefail

prune="$1"
python=/usr/bin/python3
models=pruning/testing/make_pruning_models.py
files=core/testing/make_python_files.py
work="${TEST_TMPDIR:-$(mktemp -d)}"

"$python" "$models" scripted "$work/model.pt"
"$python" "$files" labeled-four "$work/data.pt"

cat > "$work/config.textproto" <<'CONFIG'
structured { fraction: 0.5 }
fine_tune { epochs: 1 learning_rate: 0.01 }
threads: 1
CONFIG
"$prune" --model="$work/model.pt" --data="$work/data.pt" --config="$work/config.textproto" \
  --out="$work/pruned.pt" --result="$work/result.textproto" > "$work/stdout.txt"

grep -q "test accuracy" "$work/stdout.txt" || { echo "no summary in:"; cat "$work/stdout.txt"; exit 1; }
for field in accuracy_after size_after latency_after groups speedup; do
  grep -q "^$field" "$work/result.textproto" || { echo "result lacks $field"; exit 1; }
done
read -r shape_rows shape_classes parameters <<< "$("$python" "$models" run "$work/pruned.pt")"
[[ "$shape_rows $shape_classes" == "[3, 10]" ]] || { echo "unexpected output $shape_rows $shape_classes"; exit 1; }
read -r _ _ dense_parameters <<< "$("$python" "$models" run "$work/model.pt")"
(( parameters < dense_parameters )) || { echo "pruned $parameters >= dense $dense_parameters"; exit 1; }

cat > "$work/bad.textproto" <<'CONFIG'
structured { fraction: 1.0 }
threads: 1
CONFIG
if "$prune" --model="$work/model.pt" --data="$work/data.pt" --config="$work/bad.textproto" \
    --out="$work/bad.pt" --result="$work/bad_result.textproto" 2> "$work/stderr.txt"; then
  echo "a fraction of 1.0 was accepted"
  exit 1
fi
grep -q "fraction must lie in \[0, 1)" "$work/stderr.txt" || { cat "$work/stderr.txt"; exit 1; }
[[ ! -e "$work/bad.pt" && ! -e "$work/bad_result.textproto" ]] || { echo "bad run wrote files"; exit 1; }
echo "PASS"
