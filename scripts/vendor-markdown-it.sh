#!/usr/bin/env bash
# Regenerates public/vendor/markdown-it.mjs, the Markdown parser the page renders agent answers
# with: markdown-it and the packages it imports, at the versions pinned below, bundled by the
# esbuild that wrangler brings into one ES module the page loads as it is (the page has no
# build step). Their licences go to public/vendor/markdown-it.LICENSE.
# Run it by hand after changing a version, and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."

MARKDOWN_IT=15.0.3
# What markdown-it 15.0.3 imports, pinned so a rerun bundles the same code.
DEPENDENCIES=(entities@8.1.0 linkify-it@6.1.0 mdurl@2.1.0 punycode.js@2.3.1 uc.micro@3.0.0)
ESBUILD=node_modules/@esbuild/linux-x64/bin/esbuild
OUT=public/vendor/markdown-it.mjs
LICENSE_OUT=public/vendor/markdown-it.LICENSE

if [ ! -x "$ESBUILD" ]; then
  echo "vendor-markdown-it: $ESBUILD is missing; run scripts/setup.sh first" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{"private": true}' >"$work/package.json"
npm install --prefix "$work" --no-audit --no-fund --loglevel=error --ignore-scripts \
  "markdown-it@$MARKDOWN_IT" "${DEPENDENCIES[@]}" >&2

# Every bundled package must be the pinned one (npm could nest another copy otherwise).
for pinned in "markdown-it@$MARKDOWN_IT" "${DEPENDENCIES[@]}"; do
  name=${pinned%@*} version=${pinned##*@}
  found=$(node -p "require('$work/node_modules/$name/package.json').version")
  [ "$found" = "$version" ] || { echo "vendor-markdown-it: $name is $found, not $version" >&2; exit 1; }
done
if [ -n "$(find "$work/node_modules" -mindepth 3 -name package.json -path '*/node_modules/*/node_modules/*' | head -1)" ]; then
  echo "vendor-markdown-it: npm nested a second copy of a dependency; adjust the pins" >&2
  exit 1
fi

echo "export { default } from 'markdown-it';" >"$work/entry.mjs"
mkdir -p public/vendor
"$ESBUILD" "$work/entry.mjs" --bundle --format=esm --platform=browser --target=es2022 --minify \
  --legal-comments=none --log-level=warning --outfile="$OUT" \
  --banner:js="/* markdown-it $MARKDOWN_IT with ${DEPENDENCIES[*]}, bundled by scripts/vendor-markdown-it.sh. Licences: markdown-it.LICENSE */"

{
  echo "public/vendor/markdown-it.mjs bundles these packages; their licences follow."
  for pinned in "markdown-it@$MARKDOWN_IT" "${DEPENDENCIES[@]}"; do
    name=${pinned%@*}
    license=$(find "$work/node_modules/$name" -maxdepth 1 -iname 'licen[cs]e*' | head -1)
    [ -n "$license" ] || { echo "vendor-markdown-it: no licence file in $name" >&2; exit 1; }
    printf '\n==== %s (%s) ====\n\n' "$pinned" "$(node -p "require('$work/node_modules/$name/package.json').license")"
    cat "$license"
  done
} >"$LICENSE_OUT"

# The page's CSP has no 'unsafe-eval': the bundle must not need it.
if grep -qE '\beval\(|new Function\(' "$OUT"; then
  echo "vendor-markdown-it: the bundle uses eval or new Function, which the page's CSP forbids" >&2
  exit 1
fi
echo "vendor-markdown-it: wrote $OUT ($(wc -c <"$OUT") bytes) and $LICENSE_OUT" >&2
