#!/usr/bin/env bash
# The real-Slurm check by hand: a single-node Slurm on loopback (slurm_node.sh), a 2-task job array of study
# workers finishing a small grid sweep of the bundled mini data, then the study's table; the node stopped after.
#
#   bench/slurm_check.sh [DIR]       # as root, with Debian's slurm-wlm and munge installed
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(realpath -m "${1:-$(mktemp -d /tmp/slurm-check.XXXX)}")
mkdir -p "$dir"
eval "$("$here/slurm_node.sh" start "$dir/node")"
trap '"$here/slurm_node.sh" stop "$dir/node"' EXIT
cat > "$dir/sweep.toml" <<TOML
dataset = "fashion-mnist-mini"
max_train_samples = 256
epochs = 2
device = "cpu"
monitor = "val_acc"

[sweep]
name = "slurm-check"
search = "grid"
lr = [0.003, 0.01, 0.03, 0.1]
TOML
export SCRATCH_TUI_HOME="$dir/runs" PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
out=$("$python" -m tui_trainer sweep "$dir/sweep.toml" --storage "$dir/study.journal" --study check --slurm \
  --array 2 --time 10)
echo "$out"
sweep=$(sed -n 's/.*sweep \([0-9a-f]\{8\}\),.*/\1/p' <<<"$out" | head -1)
squeue
for _ in $(seq 1 120); do
  left=$("$python" - "$dir/study.journal" <<PY
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from optuna.storages.journal import JournalFileBackend
study = optuna.load_study(study_name="check", storage=optuna.storages.JournalStorage(JournalFileBackend(sys.argv[1])))
print(sum(t.state.name != "COMPLETE" for t in study.trials) + max(0, 4 - len(study.trials)))
PY
)
  [ "$left" = 0 ] && break
  sleep 2
done
"$python" -m tui_trainer sweep show "$sweep"
[ "$left" = 0 ] && echo "slurm_check: the 2-task array finished all 4 trials" || { echo "slurm_check: $left trial(s) left" >&2; exit 1; }
