#!/usr/bin/env bash
# `make check-lock`: clone this checkout's HEAD, run `make run` there from nothing (venv, demo corpus,
# every stage), and fail unless git is still clean: the committed dvc.lock, metrics and reports must be
# reproducible from their own tree. Slow (the whole pipeline); not part of CI.
set -euo pipefail
src=$(git rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/tinyvmaf-check-lock.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q "$src" "$work/clone"
cd "$work/clone"
echo "check-lock: $(git rev-parse --short HEAD) in $work/clone"
start=$(date +%s)
make run
changes=$(git status --porcelain)
if [ -n "$changes" ]; then
    echo "check-lock: FAIL: the pipeline changed tracked files in a fresh clone:" >&2
    echo "$changes" >&2
    git --no-pager diff HEAD >&2
    exit 1
fi
echo "check-lock: ok in $(( $(date +%s) - start )) s: a fresh clone reproduces dvc.lock and every tracked file"
