#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the recorded deliveries in fixtures/, so
# that each target starts from real payloads instead of from nothing.
#
# Needs jq. Safe to run again: files are overwritten, not duplicated. The
# corpus directory is ignored by git.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/delivery corpus/signature corpus/recording

# The exact body a recording sends: its `body_raw`, or its `body` as
# compact JSON (what `Recording::from_json` sends, up to number spelling).
body='if has("body_raw") then .body_raw else (.body | tojson) end'
zeros=0000000000000000000000000000000000000000000000000000000000000000

for file in ../fixtures/*/*.json; do
    name="$(basename "$(dirname "$file")").$(basename "$file" .json)"

    # recording: the fixture file as it is.
    cp "$file" "corpus/recording/$name.json"

    # delivery: a choice byte, then the body. 0x00 sends it as JSON with
    # the first event name of each service; 0x09 wraps it in a form.
    { printf '\000'; jq -j "$body" "$file"; } >"corpus/delivery/$name"
    { printf '\011'; jq -j "$body" "$file"; } >"corpus/delivery/$name.form"

    # signature: the body, then well-formed but wrong signature headers
    # (X-Hub-Signature-256, X-Forgejo-Signature, and a Standard Webhooks
    # triple), one per line, each behind the byte that names it.
    {
        jq -j "$body" "$file"
        printf '\n\000sha256=%s\n\002%s' "$zeros" "$zeros"
        printf '\n\010msg_1\n\0111700000000'
        printf '\n\007v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
    } >"corpus/signature/$name"
done
