#!/usr/bin/env bash
# A fake Firecracker `jailer` for tests. It parses the jailer's command line like jailer v1.16.1
# (see firecracker-api.v1.16.1.json, cli.jailer), builds <chroot-base>/<exec name>/<id>/root,
# copies the exec file into it and execs it as `<exec name> --id <id> --start-time-us <n>
# --start-time-cpu-us <n> <args after -->` from inside that directory, keeping the pid (no
# --daemonize / --new-pid-ns support, as the driver uses neither).
# It cannot chroot or drop privileges without root and a static binary, so it tells the fake
# firecracker where the jail is (FAKE_FC_CHROOT) and the fake resolves absolute paths in it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
id="" exec_file="" uid="" gid="" chroot_base="/srv/jailer" cgroup_version="1" netns=""
extra=()

die() {
  echo "Jailer error: $*" >&2
  exit 1
}

if [[ " $* " == *" --version "* ]]; then
  echo "Jailer v1.16.1"
  echo
  exit 0
fi

seen=" "
while (($#)); do
  arg="$1"
  shift
  if [[ "$arg" == "--" ]]; then
    extra=("$@")
    break
  fi
  case "$arg" in
  --cgroup | --resource-limit) ;;
  *)
    [[ "$seen" == *" $arg "* ]] && die "The argument '${arg#--}' was provided more than once."
    seen+="$arg "
    ;;
  esac
  case "$arg" in
  --id | --exec-file | --uid | --gid | --chroot-base-dir | --netns | --cgroup-version | --parent-cgroup | --cgroup | --resource-limit)
    (($#)) || die "The argument '${arg#--}' requires a value, but none was supplied."
    value="$1"
    shift
    case "$arg" in
    --id) id="$value" ;;
    --exec-file) exec_file="$value" ;;
    --uid) uid="$value" ;;
    --gid) gid="$value" ;;
    --chroot-base-dir) chroot_base="$value" ;;
    --netns) netns="$value" ;;
    --cgroup-version) cgroup_version="$value" ;;
    esac
    ;;
  --daemonize | --new-pid-ns) die "fake jailer: $arg is not modelled" ;;
  *) die "Found argument '${arg#--}' which wasn't expected, or isn't valid in this context." ;;
  esac
done

for required in id exec_file uid gid; do
  [[ -n "${!required}" ]] || die "Argument '${required//_/-}' required, but not found."
done
[[ "$id" =~ ^[A-Za-z0-9-]{1,64}$ ]] || die "Invalid instance ID: $id"
[[ "$uid" =~ ^[0-9]+$ ]] || die "Invalid uid: $uid"
[[ "$gid" =~ ^[0-9]+$ ]] || die "Invalid gid: $gid"
[[ "$cgroup_version" == 1 || "$cgroup_version" == 2 ]] || die "Invalid cgroup version: $cgroup_version"
[[ -z "$netns" || -e "$netns" ]] || die "Failed to open the netns file $netns"
exec_path="$(realpath -e -- "$exec_file" 2>/dev/null)" || die "Failed to canonicalize path $exec_file"
[[ -f "$exec_path" ]] || die "$exec_path is not a file"
base="$(realpath -e -- "$chroot_base" 2>/dev/null)" || die "Failed to canonicalize path $chroot_base"
[[ -d "$base" ]] || die "$base is not a directory"
for a in "${extra[@]}"; do
  [[ "$a" == "--id" ]] && die "fake jailer: firecracker already gets --id from the jailer"
done

name="$(basename -- "$exec_path")"
root="$base/$name/$id/root"
mkdir -p -- "$root"
cp -f -- "$exec_path" "$root/$name"
chmod 0755 "$root/$name"
cd "$root"
export FAKE_FC_CHROOT="$root"
export FAKE_FC_API_SCHEMA="${FAKE_FC_API_SCHEMA:-$here/firecracker-api.v1.16.1.json}"
exec "./$name" --id "$id" --start-time-us 0 --start-time-cpu-us 0 "${extra[@]}"
