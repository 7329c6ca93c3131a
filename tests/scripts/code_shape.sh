#!/usr/bin/env bash
# The shape the code keeps (issue 14): no file over 500 lines in host/, no function over 80 lines
# in host/ (lambdas count toward the function that holds them), and every C++ file of the tree
# formatted by .clang-format. Function extents come from Universal Ctags (its `end:` field).
# usage: code_shape.sh SOURCE_DIR
set -euo pipefail
src=$1
cd "$src"
max_file=500 max_function=80
fail=0

mapfile -t host_files < <(git ls-files 'host/*.cpp' 'host/*.hpp')
((${#host_files[@]} > 20)) || { echo "FAIL: found only ${#host_files[@]} host files" >&2; exit 1; }
for f in "${host_files[@]}"; do
  n=$(wc -l < "$f")
  if ((n > max_file)); then
    echo "FAIL: $f has $n lines (at most $max_file): split it where its parts are separate things" >&2
    fail=1
  fi
done

# Universal Ctags (Debian's universal-ctags installs ctags-universal, and `ctags` as an alternative).
ctags_bin=$(command -v ctags-universal || command -v ctags) || { echo "FAIL: Universal Ctags is not installed" >&2; exit 1; }
functions=$("$ctags_bin" --languages=C++ --kinds-C++=f --fields=+ne -o - "${host_files[@]}")
[[ -n $functions ]] || { echo "FAIL: ctags found no functions" >&2; exit 1; }
long=$(awk -F'\t' -v max=$max_function '{
    line = 0; end = 0
    for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) line = substr($i, 6); if ($i ~ /^end:/) end = substr($i, 5) }
    if (end && end - line + 1 > max) printf "%s:%d: %s is %d lines\n", $2, line, $1, end - line + 1
  }' <<< "$functions")
if [[ -n $long ]]; then
  echo "FAIL: functions over $max_function lines in host/ (split them):" >&2
  echo "$long" >&2
  fail=1
fi
echo "host: ${#host_files[@]} files, $(wc -l <<< "$functions") functions checked"

mapfile -t cpp_files < <(git ls-files '*.cpp' '*.hpp')
unformatted=()
for f in "${cpp_files[@]}"; do
  clang-format --dry-run --Werror "$f" > /dev/null 2>&1 || unformatted+=("$f")
done
if ((${#unformatted[@]})); then
  echo "FAIL: ${#unformatted[@]} file(s) not formatted by .clang-format (clang-format -i FILE): ${unformatted[*]}" >&2
  fail=1
fi
echo "format: ${#cpp_files[@]} files checked"
exit $fail
