#!/usr/bin/env bash
# make stack-check (CI runs it after make test): build the image and the stand-ins, bring
# docker-compose.yml up with podman-compose, run the README's first session against it
# (deploy/first-session.sh), check each service's RabbitMQ user is held to its own things
# and that Prometheus sees every process up, then tear everything down, always.
#
# These machines cannot pull images: RabbitMQ, PostgreSQL and Prometheus are stand-ins
# built from Debian's packages (deploy/standins/), on a Debian base made with debootstrap,
# and Grafana (profile "grafana") is left out. Podman keeps its storage between runs,
# so the base and unchanged layers are built once. Installs what it needs when missing.
#
# GRIDGOV_STACK_PROJECT (gridgov-ci) names the compose project; GRIDGOV_BUILD_CA (the host's
# CA bundle, for a TLS-inspecting proxy) is handed to builds as a secret, never baked in.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROJECT=${GRIDGOV_STACK_PROJECT:-gridgov-ci}
TOOLS=${GRIDGOV_TOOLS:-$ROOT/.tools}
PODMAN_COMPOSE_VERSION=1.6.0
BASE=${GRIDGOV_BASE_IMAGE:-localhost/debian:bookworm}
CA=${GRIDGOV_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

# cgroups v1 here: runc, not crun; root lacks CAP_SYS_RESOURCE: explicit ulimits (tooling.md).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/ci/containers.conf}
export GRIDGOV_IMAGE=localhost/gridgov:dev
export GRIDGOV_RABBITMQ_IMAGE=localhost/gridgov-standin-rabbitmq:dev
export GRIDGOV_POSTGRES_IMAGE=localhost/gridgov-standin-postgres:dev
export GRIDGOV_PROMETHEUS_IMAGE=localhost/gridgov-standin-prometheus:dev
export GRIDGOV_WEB_WORKERS=1  # 2 cores run all ten processes

step() { printf '\n[stack-check %4ss] %s\n' "$SECONDS" "$*"; }
quiet() {  # quiet COMMAND...: its output only when it fails
  local log
  log=$(mktemp)
  "$@" >"$log" 2>&1 || { local status=$?; tail -30 "$log" >&2; rm -f "$log"; return "$status"; }
  rm -f "$log"
}

# -- tools ------------------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)  # deploy/first-session.sh
[ -e /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)  # names on the network
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  quiet apt-get update
  quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
if [ "$("$TOOLS/bin/podman-compose" version 2>/dev/null | grep -o 'podman-compose version [0-9.]*' | awk '{print $3}')" \
     != "$PODMAN_COMPOSE_VERSION" ]; then
  step "installing podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS"
  python3 -m venv "$TOOLS"
  quiet "$TOOLS/bin/pip" install "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
export COMPOSE="$TOOLS/bin/podman-compose -p $PROJECT"

# -- images -----------------------------------------------------------------------------
secret=()
[ -s "$CA" ] && secret=(--secret "id=ca,src=$CA")
if ! podman image exists "$BASE"; then
  step "building the Debian base $BASE"
  deploy/ci/debian-base.sh "$BASE"
fi
build() {  # build IMAGE CONTEXT [options]: docker format keeps HEALTHCHECK
  local image=$1 context=$2 started=$SECONDS
  shift 2
  quiet podman build --format docker --build-arg "BASE_IMAGE=$BASE" "${secret[@]}" -t "$image" "$@" "$context"
  echo "  $image ($((SECONDS - started)) s)"
}
step "building the image and the stand-ins, side by side (unchanged layers come from the cache)"
builds=()
build "$GRIDGOV_IMAGE" . -f deploy/Dockerfile &
builds+=($!)
for standin in rabbitmq postgres prometheus; do
  build "localhost/gridgov-standin-$standin:dev" "deploy/standins/$standin" &
  builds+=($!)
done
for pid in "${builds[@]}"; do wait "$pid"; done  # a failed build fails the check here
# Podman's storage stays between runs: keep the image's build stage (the virtualenv, the
# slow layer) under a name, and drop what earlier runs left untagged (~370 MB a change).
quiet podman build --format docker --build-arg "BASE_IMAGE=$BASE" "${secret[@]}" --target build \
  -t localhost/gridgov-build:dev -f deploy/Dockerfile .
quiet podman image prune -f

# -- the stack --------------------------------------------------------------------------
containers() {  # containers SERVICE...: their container ids in this project
  local service
  for service in "$@"; do
    podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
      --filter "label=com.docker.compose.service=$service"
  done
}
teardown() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    step "FAILED: the stack as it was"
    podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}  {{.Status}}' || true
    for id in $(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT"); do
      echo "--- $(podman inspect -f '{{.Name}}' "$id") ---"
      podman logs --tail 25 "$id" 2>&1 | cut -c1-400 || true
    done
  fi
  local cpu=0 id usage
  for id in $(podman ps -aq --no-trunc --filter "label=com.docker.compose.project=$PROJECT"); do
    usage=/sys/fs/cgroup/cpuacct/libpod_parent/libpod-$id/cpuacct.usage  # cgroups v1, cgroupfs
    [ -r "$usage" ] && cpu=$((cpu + $(cat "$usage")))
  done
  echo "CPU used by the stack's running containers: $((cpu / 1000000000)) s"
  step "tearing down"
  remove_stack
  step "done ($([ "$status" -eq 0 ] && echo ok || echo "failed: $status"))"
  exit "$status"
}
# What compose made, by its labels, all at once (compose down goes one service at a time).
remove_stack() {
  local label="label=com.docker.compose.project=$PROJECT" ids
  ids=$(podman ps -aq --filter "$label")
  if [ -n "$ids" ]; then
    podman stop -t 5 $ids >/dev/null 2>&1 || true
    podman rm -f $ids >/dev/null 2>&1 || true
  fi
  podman volume rm -f $(podman volume ls -q --filter "$label") >/dev/null 2>&1 || true
  podman network rm -f $(podman network ls -q --filter "$label") >/dev/null 2>&1 || true
}
trap teardown EXIT
remove_stack  # a previous run's leftovers

# Host ports for the published ones (this machine may be running other things).
read -r GRIDGOV_IDENTITY_PORT GRIDGOV_GRIDS_PORT GRIDGOV_INTAKE_PORT GRIDGOV_DISPATCH_PORT GRIDGOV_NOTIFY_PORT \
  GRIDGOV_PROMETHEUS_PORT GRIDGOV_RABBITMQ_UI_PORT < <("$PYTHON" -c '
from gridkit.processes import free_port
print(*sorted({free_port() for _ in range(40)})[:7])')
export GRIDGOV_IDENTITY_PORT GRIDGOV_GRIDS_PORT GRIDGOV_INTAKE_PORT GRIDGOV_DISPATCH_PORT GRIDGOV_NOTIFY_PORT \
  GRIDGOV_PROMETHEUS_PORT GRIDGOV_RABBITMQ_UI_PORT

# Podman 4.3 runs no healthchecks on its own without systemd and its compose cannot wait
# on `service_healthy`: start in docker-compose.yml's dependency order, and run each
# container's own healthcheck until it passes.
healthy() {  # healthy SECONDS SERVICE...
  local seconds=$1 id deadline
  shift
  deadline=$((SECONDS + seconds))
  for id in $(containers "$@"); do
    until podman healthcheck run "$id" >/dev/null 2>&1; do
      if [ "$(podman inspect -f '{{.State.Running}}' "$id")" != true ] || [ "$SECONDS" -ge "$deadline" ]; then
        echo "not healthy: $(podman inspect -f '{{.Name}}' "$id")" >&2
        return 1
      fi
      sleep 2  # each check costs CPU the starting processes need
    done
  done
}
mapfile -t services < <("$PYTHON" -c 'from gridkit import registry; print(*registry.SERVICES, sep="\n")')
processes=()
for service in "${services[@]}"; do processes+=("$service-web" "$service-worker"); done

step "up: rabbitmq postgres prometheus sms-sink"
quiet $COMPOSE up -d --no-deps rabbitmq postgres prometheus sms-sink
healthy 120 rabbitmq postgres prometheus sms-sink

step "migrate (every schema, every queue, as the migrate user)"
quiet $COMPOSE up -d --no-deps migrate
status=$(podman wait "$(containers migrate)")
podman logs "$(containers migrate)" 2>&1 | grep -v '^{' || true
[ "$status" = 0 ] || { echo "migrate exited with $status" >&2; exit 1; }

step "up: ${processes[*]}"
quiet $COMPOSE up -d --no-deps "${processes[@]}"
healthy 180 "${processes[@]}"

step "the README's first session (deploy/first-session.sh)"
SMS_LOGS="podman logs $(containers sms-sink)" deploy/first-session.sh

step "each service's broker user holds it to its own exchange and queues"
for service in "${services[@]}"; do
  podman exec -i "$(containers "$service-worker")" python - < deploy/ci/bus_permissions.py
done

step "Prometheus sees every process"
"$PYTHON" deploy/ci/prometheus_sees.py "http://127.0.0.1:$GRIDGOV_PROMETHEUS_PORT" 90
