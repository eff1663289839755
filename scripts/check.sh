#!/usr/bin/env bash
# Static checks CI runs before the tests: the tree's format, clang-tidy on changed files, a clang
# build with thread-safety analysis and -Werror, and a short libFuzzer run of every fuzz target.
#
#   scripts/check.sh                 everything
#   STILLPOINT_FUZZ_SECONDS=N        seconds per fuzz target (default 30; 0 skips fuzzing)
#   STILLPOINT_TIDY_STRICT=0         clang-tidy findings are only printed with their count
#                                    (default 1: any finding fails the check)
#   STILLPOINT_TIDY_BASE=REV         clang-tidy the C++ files changed since REV
#                                    (default: the last 5 commits; at most 30 files, about
#                                    15 s each on two cores)
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
fuzz_seconds="${STILLPOINT_FUZZ_SECONDS:-30}"

step() { echo "check: $*" >&2; }

# Installs clang, clang-format and clang-tidy (setup.sh also builds the clang preset's default
# target; the static checks need only its libraries and fuzzers: -Wthread-safety, -Werror).
STILLPOINT_SETUP_BUILD_TARGET=static-check "$top/scripts/setup.sh" clang

step "format (.clang-format)"
mapfile -t sources < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run -Werror "${sources[@]}"; then
  echo "check: the files above are not formatted; run: clang-format -i \$(git ls-files '*.cc' '*.h')" >&2
  exit 1
fi

base="${STILLPOINT_TIDY_BASE:-}"
if [ -z "$base" ]; then
  count="$(git rev-list --count HEAD)"
  base="HEAD~$(( count > 5 ? 5 : count - 1 ))"
fi
mapfile -t changed < <(git diff --name-only --diff-filter=AM "$base" -- 'src/*.cc' |
                       grep -v -e '/fuzz/' -e '_test\.cc$' | head -30 || true)
if [ "${#changed[@]}" -gt 0 ]; then
  step "clang-tidy (.clang-tidy) on ${#changed[@]} files changed since $base"
  if ! printf '%s\n' "${changed[@]}" |
      xargs -P 2 -n 1 clang-tidy -p build/clang --quiet --warnings-as-errors='*' \
        > build/clang/tidy.log 2>&1; then
    grep -E ' error: ' build/clang/tidy.log | sort -u >&2 || true
    findings="$(grep -cE ' error: ' build/clang/tidy.log || true)"
    echo "check: clang-tidy: $findings findings (build/clang/tidy.log)" >&2
    [ "${STILLPOINT_TIDY_STRICT:-1}" = 1 ] && exit 1
  fi
fi

if [ "$fuzz_seconds" -gt 0 ]; then
  mapfile -t fuzzers < <(find build/clang -name '*_fuzzer' -type f -executable | sort)
  for fuzzer in "${fuzzers[@]}"; do
    name="$(basename "$fuzzer" _fuzzer)"
    corpus="$top/tests/fuzz/corpus/${name%_fuzz}"
    [ -d "$corpus" ] || { echo "check: no corpus $corpus for $fuzzer" >&2; exit 1; }
    work="$(mktemp -d)"
    step "fuzz $name for ${fuzz_seconds}s"
    # New inputs go to a scratch corpus; the checked-in one is only read.
    if ! "$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=0 -artifact_prefix="$work/" \
        "$work" "$corpus" > "$work/log" 2>&1; then
      tail -40 "$work/log" >&2
      echo "check: $name found a crash; the input is in $work" >&2
      exit 1
    fi
    rm -rf "$work"
  done
fi
step "all checks passed"
