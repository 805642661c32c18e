#!/bin/bash
# Runs //sparse:train_sparse as a user would, on a small torch.save data set made by PyTorch,
# and checks that it writes a loadable model and a result, and rejects a bad config.
set -euo pipefail

train_sparse="$1"
make_files="$2"
config="$3"
work="${TEST_TMPDIR:-$(mktemp -d)}"

/usr/bin/python3 "$make_files" labeled-four "$work/data.pt"
"$train_sparse" --model=mlp --config="$config" --data="$work/data.pt" \
  --out="$work/model.pt" --result="$work/result.textproto" --threads=1 > "$work/stdout.txt"

for file in model.pt result.textproto; do
  if [[ ! -s "$work/$file" ]]; then
    echo "FAIL: train_sparse did not write $file" >&2
    exit 1
  fi
done
for field in dense_accuracy sparse_accuracy exported_accuracy size_after latency_exported \
    'layer: "fc1"'; do
  if ! grep -q "$field" "$work/result.textproto"; then
    echo "FAIL: the result has no $field:" >&2
    cat "$work/result.textproto" >&2
    exit 1
  fi
done
grep -q "exported model accuracy" "$work/stdout.txt"

# A config with an invalid sparsity fails with a one-line error and writes nothing.
echo 'sparsity { sparsity: 1.5 }' > "$work/bad.textproto"
if "$train_sparse" --model=mlp --config="$work/bad.textproto" --data="$work/data.pt" \
    --out="$work/bad.pt" --result="$work/bad_result.textproto" 2> "$work/stderr.txt"; then
  echo "FAIL: train_sparse accepted sparsity 1.5" >&2
  exit 1
fi
grep -q "sparsity.sparsity must lie in \[0, 1), got 1.5" "$work/stderr.txt"
if [[ -e "$work/bad.pt" ]]; then
  echo "FAIL: train_sparse wrote a model despite the error" >&2
  exit 1
fi
echo "1 passed, 0 failed"
