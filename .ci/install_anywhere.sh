#!/usr/bin/env bash
# Install test: `pip install .` (not editable, no test extras) into a fresh virtual environment, then
# the README's train and sample commands from a folder outside the repository. The configs come from
# the installed package gan_jax.configs (--config=configs/default.py does not exist in that folder).
#
#   .ci/install_anywhere.sh        # exits non-zero with "install_anywhere: FAILED: ..." on failure
#
# pip builds from a copy of the checkout (its files, without .git and build outputs), so that the
# build's build/ and *.egg-info folders do not land in the checkout others are working in.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

fail() {
    echo "install_anywhere: FAILED: $*" >&2
    exit 1
}
step() { echo "install_anywhere: [$((SECONDS - start)) s] $*"; }

step "fresh venv in $tmp/venv"
python3 -m venv "$tmp/venv" || fail "python3 -m venv"
# shellcheck disable=SC1091
source "$tmp/venv/bin/activate"
python -m pip install --quiet --upgrade pip || fail "pip install --upgrade pip"

step "pip install . (a copy of $repo)"
mkdir "$tmp/src"
tar -C "$repo" --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' --exclude=venv \
    --exclude=.venv --exclude=__pycache__ -cf - . | tar -C "$tmp/src" -xf - || fail "copying the checkout"
(cd "$tmp/src" && pip install --quiet .) || fail "pip install . (see pip's output above)"

anywhere="$tmp/anywhere"
mkdir "$anywhere"
cd "$anywhere"
step "in $anywhere: the installed package, not the checkout"
python - "$repo" <<'EOF' || fail "gan_jax is not the installed copy, or gan_jax.configs does not import"
import os, sys
import gan_jax, gan_jax.configs.common
repo = os.path.realpath(sys.argv[1])
for module in (gan_jax, gan_jax.configs.common):
    where = os.path.realpath(module.__file__)
    assert not where.startswith(repo + os.sep), f"{module.__name__} comes from the checkout: {where}"
    print(f"  {module.__name__}: {where}")
EOF

step "train: python -m gan_jax.main --config=configs/default.py:tiny --workdir=W"
python -m gan_jax.main --config=configs/default.py:tiny --workdir=W --config.log.tensorboard=false \
    || fail "python -m gan_jax.main --config=configs/default.py:tiny --workdir=W (run from $anywhere)"
[ -d W/checkpoints ] || fail "training wrote no W/checkpoints"

step "sample: python -m gan_jax.sample --workdir=W --seeds=0-3 --outdir=OUT"
python -m gan_jax.sample --workdir=W --seeds=0-3 --outdir=OUT || fail "python -m gan_jax.sample --workdir=W --seeds=0-3"
for seed in 0 1 2 3; do
    png="OUT/seed000$seed.png"
    [ -s "$png" ] || fail "no $png after --seeds=0-3 (OUT holds: $(find OUT 2>&1 | tr '\n' ' '))"
done

step "OK: installed with pip install ., trained and sampled 4 images from a folder outside the repository"
