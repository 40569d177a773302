#!/usr/bin/env bash
# Builds, once per interpreter, the environment of PyPI frameworks the suite attaches to
# (tests/frameworks/requirements.txt) and caches it under $PEEKA_FRAMEWORKS (default
# ~/.cache/peeka-frameworks/<minor>). pyenv's 3.8-3.13 get a real virtual environment; Debian's
# 3.14/3.15 ship without ensurepip/venv, so their packages go into a --target folder installed by
# another interpreter's pip for that exact version and ABI, used through PYTHONPATH
# (tests/helpers/frameworks.ts knows both forms). A folder is complete when it holds "ok".
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${PEEKA_FRAMEWORKS:-$HOME/.cache/peeka-frameworks}"
req="$here/requirements.txt"
stamp="$(sha256sum "$req" | cut -c1-16)"
mkdir -p "$root"

pyenv_python() { ls -d "$HOME"/.pyenv/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V | tail -1; }

provision_venv() { # minor python
  # --without-pip and the interpreter's own pip pointed at the venv (--python): no ensurepip run;
  # --no-compile: bytecode is written on first import instead of for every file up front.
  local dir="$root/$1"
  rm -rf "$dir" && "$2" -m venv --without-pip "$dir" &&
    "$2" -m pip --python "$dir/bin/python" install -q --no-compile --disable-pip-version-check --root-user-action=ignore \
      -r "$req" &&
    echo "$stamp" >"$dir/ok"
}

provision_target() { # minor installer-python
  local dir="$root/$1"
  rm -rf "$dir" && mkdir -p "$dir" &&
    "$2" -m pip install -q --no-compile --disable-pip-version-check --root-user-action=ignore \
      --target "$dir/site" --python-version "$1" --implementation cp --only-binary=:all: -r "$req" &&
    echo "$stamp" >"$dir/ok"
}

fresh() { [ "$(cat "$root/$1/ok" 2>/dev/null)" = "$stamp" ]; }

pids=()
for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
  py=$(pyenv_python "$v")
  [ -n "$py" ] || { echo "frameworks $v: no interpreter, skipped"; continue; }
  fresh "$v" && { echo "frameworks $v: cached"; continue; }
  ( provision_venv "$v" "$py" && echo "frameworks $v: built" || echo "frameworks $v: FAILED" ) &
  pids+=($!)
  # two at a time: this machine has 2 cores
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
for v in 3.13 3.12 3.11; do installer=$(pyenv_python "$v"); [ -n "$installer" ] && break; done
for v in 3.14 3.15; do
  fresh "$v" && { echo "frameworks $v: cached"; continue; }
  [ -n "$installer" ] || { echo "frameworks $v: no pip to install with, skipped"; continue; }
  provision_target "$v" "$installer" && echo "frameworks $v: built" || echo "frameworks $v: FAILED"
done
