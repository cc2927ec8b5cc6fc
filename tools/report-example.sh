#!/usr/bin/env bash
# Renders the example report of docs/report.md and the README from the demo ledger
# (tools/demo-ledger.py) with Chromium, headless: docs/report-example.html and a screenshot
# of its top, docs/report-example.png. Needs a built decompute and chromium.
#
#   cargo build && tools/report-example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DECOMPUTE:-target/debug/decompute}
chrome=$(command -v chromium || command -v chromium-browser)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 tools/demo-ledger.py >"$tmp/demo.jsonl"
cat >"$tmp/decompute.toml" <<'POLICY'
[budget.llm-finetune]
carbon = "15 kg / month"
[budget.vision]
energy = "200 kWh / quarter"
POLICY
(cd "$tmp" && "$OLDPWD/$bin" ledger import --ledger "$tmp/l.sqlite" "$tmp/demo.jsonl" >/dev/null)
(cd "$tmp" && "$OLDPWD/$bin" report --ledger "$tmp/l.sqlite" --html "$tmp/report.html")
sed -e 's/generated [0-9TZ:.-]* by/generated (example) by/' -e "s|$tmp/l.sqlite|demo.sqlite|g" \
    "$tmp/report.html" >docs/report-example.html
"$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile" \
    --window-size=900,1500 --screenshot="$PWD/docs/report-example.png" \
    "file://$PWD/docs/report-example.html" >/dev/null 2>&1
echo "wrote docs/report-example.html and docs/report-example.png"
