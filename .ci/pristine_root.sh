#!/usr/bin/env bash
# The README's first command on a pristine Debian 12, without Docker: a minimal Debian
# root made by debootstrap, with only the README's prerequisites installed, then
#   ./bootstrap.sh && .venv/bin/marquee up --no-wait
# on a clean clone of the committed HEAD, as root, timed. Not part of .ci/run: it
# downloads a Debian base system and about 1.5 GB of wheels (pip's cache starts empty);
# about 11 minutes on 2 busy cores, 9 of them the command.
#
#   sudo .ci/pristine_root.sh [--keep] [ROOT]      ROOT defaults to /var/tmp/pristine
#
# Needs: root, debootstrap (apt-get install debootstrap), and deb.debian.org + PyPI.
# It copies in what any machine of this workplace has besides Debian itself: the pip
# configuration files pip reads here (`pip config debug`, plus a constraints file they name),
# the local wheel and index folders they point to under /opt (bind-mounted read-only),
# the extra CA certificates from /usr/local/share/ca-certificates and /etc/resolv.conf.
# The chroot shares this machine's network, so `marquee up` gets free ports when
# 8000-8002 are taken. Logs: ROOT.log (this script), ROOT.run.log (the command, ending
# with bash's `time`), ROOT.debootstrap.log and ROOT.prerequisites.log.
# On exit, whatever way it exits, processes left inside the root are stopped, everything
# mounted is unmounted, and ROOT is deleted unless --keep is given.
set -euo pipefail

keep=0
root=/var/tmp/pristine
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -*) echo "unknown option: $arg (usage: $0 [--keep] [ROOT])" >&2; exit 2 ;;
    *) root=$arg ;;
  esac
done
root=$(realpath -m "$root")
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
mirror=http://deb.debian.org/debian
# What the README's "Two commands" section lists as prerequisites, and nothing else.
prerequisites=(python3 python3-venv git ca-certificates)

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, mount and chroot need it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install debootstrap" >&2; exit 1; }
if [ -e "$root" ]; then
  echo "$root exists; remove it first (check nothing is mounted under it: findmnt -R $root)" >&2
  exit 1
fi
case "$root" in /|/usr|/usr/*|/etc|/etc/*|/opt|/home|/root|/work) echo "refusing ROOT=$root" >&2; exit 1 ;; esac

exec > >(tee "$root.log") 2>&1
step() { echo "pristine: $(date -u +%H:%M:%S) $*"; }

mounts=()  # in mounting order; unmounted in reverse
mnt() {  # mnt TARGET MOUNT-ARGS...
  local target=$1; shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
}
cleanup() {
  local rc=$? pid proc i
  trap - EXIT INT TERM
  # Processes whose root is the chroot were started by this script (the server, the
  # Python backend stubs); stop them by id so the mounts can go.
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && kill "$pid" 2>/dev/null || true
  done
  sleep 1
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && kill -9 "$pid" 2>/dev/null || true
  done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" || true
  done
  if findmnt -rn -o TARGET | grep -q "^$root\(/\|$\)"; then
    echo "pristine: still mounted under $root; not deleting it" >&2
  elif [ "$keep" = 0 ] && [ -d "$root" ]; then
    step "deleting $root (--keep keeps it)"
    rm -rf --one-file-system "$root"
  fi
  step "exit status $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "debootstrap --variant=minbase bookworm $root $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
  tail -20 "$root.debootstrap.log"; exit 1; }

# A Debian 12 installation's package sources: the release, its updates and security.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi

mnt "$root/proc" -t proc proc
mnt "$root/sys" --rbind /sys
mount --make-rslave "$root/sys"
mnt "$root/dev" --rbind /dev
mount --make-rslave "$root/dev"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "prerequisites: apt-get install ${prerequisites[*]}"
{ in_root apt-get update -q &&
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${prerequisites[@]}"
} >"$root.prerequisites.log" 2>&1 || { tail -20 "$root.prerequisites.log"; exit 1; }

# This workplace's pip configuration: every configuration file pip reads here, the
# constraints file they name, and the local folders they point to (read-only).
pip_files=$(python3 -m pip config debug 2>/dev/null | sed -n 's/^ *\(\/[^,]*\), exists: True$/\1/p')
for file in $pip_files; do
  for value in $(sed -n 's/^[a-z-]* *= *//p' "$file"); do
    value=${value#file://}
    case "$value" in
      /*.txt) [ -f "$value" ] && pip_files="$pip_files $value" ;;
      /opt/*) value=$(echo "$value" | cut -d/ -f1-3)
              if [ -d "$value" ] && [ ! -d "$root$value" ]; then
                step "bind-mounting $value read-only"
                mnt "$root$value" --bind -o ro "$value"
              fi ;;
    esac
  done
done
for file in $pip_files; do
  step "copying pip configuration $file"
  mkdir -p "$root$(dirname "$file")"
  cp "$file" "$root$file"
done

step "git clone of $repo at $(git -C "$repo" rev-parse --short HEAD) (committed HEAD only)"
mnt "$root/mnt/source" --bind -o ro "$repo"
in_root git -c safe.directory='*' clone -q --no-hardlinks /mnt/source /root/marquee

ports=""
if ! python3 - <<'EOF'
import socket, sys
for port in (8000, 8001, 8002):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            sys.exit(1)
EOF
then
  ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(f"--{n}-port {s.getsockname()[1]}" for n, s in zip(("http", "grpc", "metrics"), socks)))')
  step "ports 8000-8002 are taken on this machine; using $ports"
fi

command="./bootstrap.sh && .venv/bin/marquee up --no-wait $ports"
step "in the root, as root, in /root/marquee: $command  (log: $root.run.log)"
start=$(date +%s)
set +e
in_root bash -c "cd /root/marquee && time ($command)" >"$root.run.log" 2>&1
rc=$?
set -e
elapsed=$(($(date +%s) - start))
tail -40 "$root.run.log"
step "the first command exited $rc after $((elapsed / 60)) min $((elapsed % 60)) s ($(date -u))"
exit "$rc"
