#!/usr/bin/env bash
# Train gan_jax on a Cloud TPU VM slice: create it, install gan_jax on every worker, train with a
# gs:// workdir, stream the logs, delete it.
#
#   experiments/tpu_pod/launch.sh create  --name=gan --zone=us-central2-b --type=v4-32
#   experiments/tpu_pod/launch.sh install --name=gan --zone=us-central2-b
#   experiments/tpu_pod/launch.sh train   --name=gan --zone=us-central2-b \
#       --config=configs/stylegan2_ffhq.py --workdir=gs://BUCKET/runs/ffhq [-- --config.train.batch_size=256]
#   experiments/tpu_pod/launch.sh logs    --name=gan --zone=us-central2-b
#   experiments/tpu_pod/launch.sh delete  --name=gan --zone=us-central2-b
#   experiments/tpu_pod/launch.sh all ...   # create, install, train, logs
#   experiments/tpu_pod/launch.sh help      # this text (also --help, -h)
#
# --dry-run prints every gcloud command instead of running it. Every worker runs the same
# `python -m gan_jax.main`; jax.distributed.initialize() finds the slice's other workers itself
# (--multihost), and the same command resumes from the workdir's latest checkpoint.
set -euo pipefail

name="gan-jax"
zone="us-central2-b"
type="v4-32"
version="tpu-ubuntu2204-base"
project=""
config="configs/stylegan2_ffhq.py"
workdir=""
spot=0
dry_run=0
extra=()

# The comment block at the top of this file (up to its first line of code) is the help text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

[[ $# -ge 1 ]] || usage 1
action="$1"
shift
case "$action" in
  help|--help|-h) usage 0 ;;
esac
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --type=*) type="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --spot) spot=1 ;;
    --dry-run) dry_run=1 ;;
    --help|-h) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

common=(--zone="$zone")
[[ -n "$project" ]] && common+=(--project="$project")

run() {
  if [[ "$dry_run" == 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"

create() {
  local flags=(--accelerator-type="$type" --version="$version")
  [[ "$spot" == 1 ]] && flags+=(--spot)
  run gcloud compute tpus tpu-vm create "$name" "${common[@]}" "${flags[@]}"
}

install() {
  local tarball="/tmp/gan_jax-src.tar.gz"
  run git -C "$repo_root" archive --format=tar.gz -o "$tarball" HEAD
  run gcloud compute tpus tpu-vm scp "$tarball" "$name:gan_jax-src.tar.gz" "${common[@]}" --worker=all
  run gcloud compute tpus tpu-vm ssh "$name" "${common[@]}" --worker=all --command \
    "mkdir -p gan_jax && tar -xzf gan_jax-src.tar.gz -C gan_jax && pip install -U 'jax[tpu]' && pip install -e ./gan_jax"
}

train() {
  if [[ -z "$workdir" ]]; then
    echo "train needs --workdir=gs://BUCKET/PATH (every worker writes its checkpoint shards there)" >&2
    exit 2
  fi
  local args
  args="--config=$config --workdir=$workdir --multihost"
  if [[ ${#extra[@]} -gt 0 ]]; then
    args+=" $(printf '%q ' "${extra[@]}")"
  fi
  run gcloud compute tpus tpu-vm ssh "$name" "${common[@]}" --worker=all --command \
    "cd gan_jax && nohup python -m gan_jax.main $args > train.log 2>&1 &"
}

logs() {
  run gcloud compute tpus tpu-vm ssh "$name" "${common[@]}" --worker=0 --command "tail -n 100 -F gan_jax/train.log"
}

delete() {
  run gcloud compute tpus tpu-vm delete "$name" "${common[@]}" --quiet
}

case "$action" in
  create) create ;;
  install) install ;;
  train) train ;;
  logs) logs ;;
  delete) delete ;;
  all) create; install; train; logs ;;
  *) echo "unknown action: $action (create | install | train | logs | delete | all | help)" >&2; exit 2 ;;
esac
