#!/usr/bin/env bash
# Runs every case of cases.txt with the apps of BUILD_DIR and writes docs/bad-input.md: what each
# bad input makes fsl print and its exit code. Mismatches with the expected code or message are
# reported on stderr (exit 1). tests/test_bad_input.cpp checks the same cases and that the doc
# lists each one. Usage: tests/data/bad_input/make_doc.sh [BUILD_DIR] (default build)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$here/files" "$tmp/in"
doc="$root/docs/bad-input.md"
status=0
{
  echo "# Bad input"
  echo
  echo "Every bad input below is tried by \`tests/test_bad_input.cpp\` (cases in"
  echo "\`tests/data/bad_input/cases.txt\`, fixtures made by \`make_files.py\` there); this page is"
  echo "generated from the same cases by \`tests/data/bad_input/make_doc.sh BUILD_DIR\`. In each case"
  echo "fsl prints one line naming the file (and line, key or tensor), exits with the code shown and"
  echo "leaves earlier outputs as they were. \`<in>\` is the directory holding the bad file. Faults (kill -9, full disk,"
  echo "truncated feature files) are covered by \`tests/test_faults.cpp\`: a rerun or \`--resume\`"
  echo "completes the job and earlier outputs are never damaged."
  echo
  echo "| case | bad input | command | exit | fsl prints |"
  echo "|---|---|---|---|---|"
} > "$doc.tmp"
while IFS= read -r line; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  IFS='|' read -r id what cmd code expect <<< "$line"
  id=$(echo $id); code=$(echo $code); what="${what# }"; what="${what% }"
  cmd="${cmd# }"; cmd="${cmd% }"; expect="${expect# }"
  run="${cmd//\{bin\}/$bin}"; run="${run//\{in\}/$tmp/in}"; run="${run//\{conf\}/$root/conf}"
  run="${run//\{tmp\}/$tmp}"
  out=$(cd "$tmp" && eval "$run" 2>&1); rc=$?
  msg=$(grep -F -m1 -- "$expect" <<< "$out")
  if [[ "$rc" != "$code" || -z "$msg" ]]; then
    echo "MISMATCH $id: exit $rc (expected $code); output: $(tail -n 3 <<< "$out")" >&2
    status=1
  fi
  msg="${msg//$tmp\/in/<in>}"; msg="${msg//$tmp/<tmp>}"
  shown="${cmd//\{bin\}\//}"; shown="${shown//\{in\}/<in>}"; shown="${shown//\{conf\}/conf}"
  shown="${shown//\{tmp\}/<tmp>}"
  shown="${shown//|/\\|}"; msg="${msg//|/\\|}"
  echo "| $id | $what | \`$shown\` | $rc | \`$msg\` |" >> "$doc.tmp"
done < "$here/cases.txt"
mv "$doc.tmp" "$doc"
echo "wrote $doc" >&2
# The same table in the README's "Bad input" section, between its two markers.
readme="$root/README.md"
awk -v doc="$doc" '
  /^<!-- bad-input-table/ { print; while ((getline l < doc) > 0) if (l ~ /^\|/) print l; skip = 1; next }
  /^<!-- \/bad-input-table -->/ { skip = 0 }
  !skip { print }' "$readme" > "$readme.tmp" && mv "$readme.tmp" "$readme"
echo "updated the table in $readme" >&2
exit $status
