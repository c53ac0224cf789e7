#!/usr/bin/env bash
# Mutation testing, one module at a time, within a time budget:
#
#   scripts/mutation.sh MODULE [SECONDS]      e.g. scripts/mutation.sh store 1200
#   scripts/mutation.sh related,lexical 1800  (several modules share one start-up: see below)
#
# mutmut (configured in pyproject.toml, [tool.mutmut]) makes small changes to semsearch/MODULE.py
# one at a time and runs the quick suite's tests that reach the changed function against each.
# A mutant that no test notices "survived": a behaviour the suite does not pin down. When the
# budget runs out, the mutants checked so far count; the rest are reported as not checked, and a
# second run picks up where this one stopped (results are kept in mutants/).
#
# Prints the survivors (see one with `mutmut show NAME`) and each module's score:
# killed / checked, where checked leaves out those not checked and those mutmut skips.
# Every run starts by running the whole quick suite once, unmutated (a few minutes on two busy
# cores): give several modules to one run rather than one run each.
#
#   SAMPLE=150 scripts/mutation.sh watch 1800
#
# checks a random sample of each module's mutants (the same sample for the same SEED, default 0)
# and scores the sample, with its 95 % interval: a big module's score within one budget. Give the
# budget for the whole sample: mutmut checks the quickest mutants first, so a sample cut short
# leans toward those a test kills at once. (Making the mutants without running any ends with
# mutmut's "nothing matches" traceback in mutants.log: expected.)
set -uo pipefail

modules=${1:?usage: scripts/mutation.sh MODULE[,MODULE...] [SECONDS]   (MODULE: search, store, server, ...)}
budget=${2:-1800}
cd "$(dirname "$0")/.."
patterns=()
for module in ${modules//,/ }; do
  module=${module%.py}
  module=${module#semsearch/}
  if [[ ! -f "semsearch/${module}.py" ]]; then
    echo "mutation.sh: no module semsearch/${module}.py" >&2
    exit 2
  fi
  patterns+=("semsearch.${module//\//.}.*")
done

sampled=$(mktemp)
results=$(mktemp)
trap 'rm -f "$results" "$sampled"' EXIT
started=$SECONDS
if [[ -n ${SAMPLE:-} ]]; then
  # Makes the mutants and the test statistics, then stops: no mutant has this name.
  timeout --signal=INT --kill-after=60 "$budget" \
    mutmut run "semsearch.no_such_module.x_" --max-children "${MUTMUT_CHILDREN:-2}" >mutants.log 2>&1
  mutmut results --all true >"$results" 2>/dev/null
  python3 - "$modules" "$results" "$SAMPLE" "${SEED:-0}" >"$sampled" <<'PY'
import random
import sys

modules, results, size, seed = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = [line.strip().rpartition(": ")[0] for line in open(results, encoding="utf-8")]
for module in modules:
    prefix = "semsearch." + module.removesuffix(".py").removeprefix("semsearch/").replace("/", ".") + ".x"
    own = sorted(name for name in names if name.startswith(prefix))
    print("\n".join(random.Random(seed).sample(own, min(size, len(own)))))
PY
  # A second run of the same sample picks up where the first stopped: what was killed stays
  # killed (tests are only ever added); the rest (not checked, survived) is run.
  patterns=()
  killed_names=$(grep -E ": (killed|timeout)$" "$results" | sed -E 's/^ *//; s/: [a-z ]+$//')
  mapfile -t patterns < <(grep -v -x -F -f <(printf '%s\n' "$killed_names") "$sampled")
  if ((${#patterns[@]} == 0)); then
    patterns=("semsearch.no_such_module.x_")  # every mutant of the sample is killed already
  fi
fi

# INT, as Ctrl-C would: mutmut saves what it has checked before it stops.
timeout --signal=INT --kill-after=60 "$((budget - (SECONDS - started)))" \
  mutmut run "${patterns[@]}" --max-children "${MUTMUT_CHILDREN:-2}" >>mutants.log 2>&1
ran=$?
[[ $ran == 124 ]] && echo "mutation.sh: the budget of ${budget} s ran out; the score counts the mutants checked so far"

mutmut results --all true >"$results" 2>/dev/null
status=0
for module in ${modules//,/ }; do
  module=${module%.py}
  module=${module#semsearch/}
  python3 - "$module" "$results" "$sampled" <<'PY' || status=1
import collections
import math
import sys

module, results, sampled = sys.argv[1], sys.argv[2], sys.argv[3]
sample = set(open(sampled, encoding="utf-8").read().split())
prefix = "semsearch." + module.replace("/", ".") + ".x"  # x_function__mutmut_N or xǁClassǁmethod__mutmut_N
statuses = collections.Counter()
for line in open(results, encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    if name.startswith(prefix) and (not sample or name in sample):
        statuses[status] += 1
        if status in ("survived", "suspicious"):
            print(f"  {status}: {name}")
killed = statuses["killed"] + statuses["timeout"] + statuses["caught by type check"]
checked = killed + statuses["survived"] + statuses["suspicious"] + statuses["no tests"] + statuses["segfault"]
summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "no mutants checked"
print(f"semsearch/{module}.py: {summary}")
if not checked:
    print("score: none (nothing checked; see mutants.log)")
    sys.exit(1)
score = killed / checked
# Wilson's interval: how far a sample's score may be from the module's.
z = 1.96
centre = (score + z * z / (2 * checked)) / (1 + z * z / checked)
half = z * math.sqrt(score * (1 - score) / checked + z * z / (4 * checked * checked)) / (1 + z * z / checked)
interval = f" (95 % interval {centre - half:.2f}-{centre + half:.2f})" if sample else ""
drawn = sum(1 for name in sample if name.startswith(prefix))
of_sample = f", {checked} checked of a sample of {drawn}" if sample else ""
print(f"score {killed}/{checked} = {score:.2f}{interval}{of_sample}")
PY
done
exit $status
