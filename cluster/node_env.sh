# Environment for `ray start` on a cluster node; sourced by the launcher's start commands:
#   source ~/solar-ray/cluster/node_env.sh aws|gcp && ray start ...
# Ray processes (and so every job, task and actor on the node) inherit what is exported here.
#
# Secrets (hub token, tracking keys) are read from the cloud's secret manager with the node's own identity
# (AWS instance profile / GCP service account), so they never sit in a config, the runtime_env, the job
# submission or a lineage file. A secret that is missing or unreadable is skipped: public models still work.
_solar_cloud=${1:?usage: source node_env.sh aws|gcp}
_solar_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set -a; source "$_solar_here/$_solar_cloud/cluster.env"; set +a

export PATH="$HOME/solar-venv/bin:$PATH"
export RAY_AUTH_MODE=token                 # Ray token auth; the token is the file_mounted ~/.ray/auth_token
export HF_HOME=/mnt/solar/hf-cache         # one hub cache shared by all nodes: a 10.7B download happens once
export SOLAR_RAY_STORAGE="$SOLAR_BUCKET/ray"   # pass as run.storage_path / storage_path for resumable runs

_solar_secret() {  # print the secret's value, or nothing
  case "$_solar_cloud" in
    aws) aws secretsmanager get-secret-value --secret-id "$SOLAR_SECRET_PREFIX$1" \
           --query SecretString --output text 2>/dev/null ;;
    gcp) gcloud secrets versions access latest --secret="$SOLAR_SECRET_PREFIX$1" \
           --project="$SOLAR_GCP_PROJECT" 2>/dev/null ;;
  esac
}
for _solar_name in $SOLAR_SECRET_NAMES; do
  _solar_value="$(_solar_secret "$_solar_name" || true)"
  if [ -n "$_solar_value" ]; then export "$_solar_name=$_solar_value"; fi
done
unset _solar_name _solar_value _solar_here _solar_cloud
