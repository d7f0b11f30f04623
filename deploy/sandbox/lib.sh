# shellcheck shell=bash
# Shared helpers for deploy/sandbox. Sourced by sandbox.sh and, in a subshell of their own,
# by every services/NN-name.sh. Needs bash; callers run with `set -euo pipefail`.
#
# Contract (used by other service files, keep stable):
#   sb_log MSG...                 log a line to stderr
#   sb_die MSG...                 log and exit 1
#   sb_start NAME CMD...          start CMD detached (own session), output to $STATE/logs/NAME.log,
#                                 PID in $STATE/pids/NAME.pid; no-op if that PID is alive
#   sb_pid NAME                   print the recorded PID (empty if none)
#   sb_pid_alive NAME             0 if the recorded PID is alive (and is the process we started)
#   sb_stop NAME [TIMEOUT] [SIG]  SIG (default TERM) to the recorded PID (and its process group,
#                                 which sb_start made), wait, then KILL; removes the pid file
#   sb_wait_tcp HOST PORT TIMEOUT 0 once HOST:PORT accepts a TCP connection, 1 after TIMEOUT s
#   sb_wait_http URL TIMEOUT      0 once URL answers 2xx/3xx, 1 after TIMEOUT s
#   sb_wait_fail NAME MSG         print MSG and the tail of NAME's log, return 1
#   sb_apt PKG...                 apt-get install --no-install-recommends only missing packages
#   sb_need_cmd CMD PKG           sb_apt PKG if CMD is not on PATH
#   sb_env_set KEY VALUE          idempotently set KEY=VALUE in $STATE/sandbox.env (mode 600)
#   sb_env_get KEY                print the value of KEY from $STATE/sandbox.env (empty if unset)
#   sb_rand N                     N random characters [A-Za-z0-9]
#   sb_write_file PATH MODE [OWNER[:GROUP]] < content
#                                 write stdin to PATH only if it differs; 0 always. Sets
#                                 SB_CHANGED=1 if the content changed.
#   sb_ensure_user NAME           create a normal user with a home and bash, if missing
#   sb_rss NAME                   RSS in KiB of the recorded PID plus its descendants
#   sb_loopback_preload           path of an LD_PRELOAD .so that turns wildcard binds into loopback
#   sb_python                     the Python to use ($MLOPS_PYTHON, else repo .venv, else python3)
#   sb_venv_bin TOOL              a tool next to that Python (e.g. weed, mlflow), else from PATH

SB_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SB_DIR="$SB_LIB_DIR"
SB_REPO_ROOT="$(cd "$SB_DIR/../.." && pwd)"
STATE="${MLOPS_SANDBOX_HOME:-/var/lib/mlops-assets/sandbox}"
SB_ENV_FILE="$STATE/sandbox.env"
export STATE SB_DIR SB_REPO_ROOT
# Prometheus' file_sd target files (job `kserve`): defs/serving writes one per port while the
# local KServe model server it started runs there.
SB_PROM_TARGETS="$STATE/etc/prometheus/targets"

sb_log() {
  printf '[sandbox %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

sb_die() {
  sb_log "ERROR: $*"
  exit 1
}

sb_init_state() {
  local d
  install -d -m 0755 "$STATE"
  for d in pids logs etc data run lib; do
    install -d -m 0755 "$STATE/$d"
  done
  install -d -m 0700 "$STATE/keys"
  # The state dir must be traversable by the daemons' own users (munge, slurm, mysql, ...).
  chmod 0755 "$STATE"
  local parent
  parent="$(dirname "$STATE")"
  [[ -d "$parent" ]] && chmod o+x "$parent" || true
}

sb_debian_major() {
  local v
  v="$(cat /etc/debian_version 2>/dev/null || echo 0)"
  case "$v" in
    trixie*) echo 13 ;;
    bookworm*) echo 12 ;;
    *) echo "${v%%.*}" ;;
  esac
}

# ---------------------------------------------------------------- processes

_sb_pidfile() { printf '%s/pids/%s.pid' "$STATE" "$1"; }
_sb_startfile() { printf '%s/pids/.%s.start' "$STATE" "$1"; }

# Field 22 of /proc/PID/stat: start time in clock ticks since boot (guards against PID reuse).
_sb_starttime() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  # after "comm) " the state is field 3; starttime is field 22 -> index 19 of the rest
  local -a fields
  read -r -a fields <<<"$stat"
  printf '%s' "${fields[19]}"
}

sb_pid() {
  local pf
  pf="$(_sb_pidfile "$1")"
  [[ -s "$pf" ]] || return 0
  local pid
  pid="$(head -n 1 "$pf" | tr -dc '0-9')"
  printf '%s' "$pid"
}

_sb_alive_pid() {
  local pid="$1" state
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != "Z" && "$state" != "X" ]]
}

sb_pid_alive() {
  local name="$1" pid sf want have
  pid="$(sb_pid "$name")"
  _sb_alive_pid "$pid" || return 1
  sf="$(_sb_startfile "$name")"
  if [[ -s "$sf" ]]; then
    want="$(cat "$sf")"
    have="$(_sb_starttime "$pid" || true)"
    [[ "$want" == "$have" ]] || return 1
  fi
  return 0
}

sb_start() {
  local name="$1"
  shift
  [[ $# -gt 0 ]] || sb_die "sb_start $name: no command"
  if sb_pid_alive "$name"; then
    sb_log "$name already running (pid $(sb_pid "$name"))"
    return 0
  fi
  install -d -m 0755 "$STATE/pids" "$STATE/logs"
  local log="$STATE/logs/$name.log"
  printf '\n==== %s start: %s\n' "$(date -Is)" "$*" >>"$log"
  # Without job control a background child is not a process-group leader, so `setsid`
  # calls setsid(2) and execs in place: $! is the daemon's own PID, and the daemon leads a
  # fresh session/process group (its children can be stopped with it, by that PID).
  local had_m=0
  [[ $- == *m* ]] && { had_m=1; set +m; }
  setsid "$@" </dev/null >>"$log" 2>&1 &
  local pid=$!
  ((had_m)) && set -m
  printf '%s\n' "$pid" >"$(_sb_pidfile "$name")"
  # the start time survives exec, so it identifies this process even if the PID is reused
  _sb_starttime "$pid" >"$(_sb_startfile "$name")" 2>/dev/null || true
  sb_log "$name started (pid $pid), log $log"
}

# sb_stop NAME [TIMEOUT] [SIGNAL]
sb_stop() {
  local name="$1" timeout="${2:-20}" sig="${3:-TERM}" pid pgid i
  pid="$(sb_pid "$name")"
  if [[ -z "$pid" ]]; then
    rm -f "$(_sb_pidfile "$name")" "$(_sb_startfile "$name")"
    return 0
  fi
  if sb_pid_alive "$name"; then
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -dc '0-9')"
    sb_log "stopping $name (pid $pid, SIG$sig)"
    if [[ "$pgid" == "$pid" ]]; then
      kill -s "$sig" -- "-$pid" 2>/dev/null || true
    else
      kill -s "$sig" "$pid" 2>/dev/null || true
    fi
    for ((i = 0; i < timeout * 10; i++)); do
      _sb_alive_pid "$pid" || break
      sleep 0.1
    done
    if _sb_alive_pid "$pid"; then
      sb_log "$name (pid $pid) still alive after ${timeout}s: SIGKILL"
      if [[ "$pgid" == "$pid" ]]; then
        kill -s KILL -- "-$pid" 2>/dev/null || true
      else
        kill -s KILL "$pid" 2>/dev/null || true
      fi
      sleep 0.3
    fi
    # leftovers of the group we created (children that outlived the leader)
    if [[ "$pgid" == "$pid" ]] && kill -0 -- "-$pid" 2>/dev/null; then
      sleep 1
      kill -s KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$(_sb_pidfile "$name")" "$(_sb_startfile "$name")"
}

# Total RSS (KiB) of the recorded PID and all its descendants (PostgreSQL's and sshd's children
# leave the process group, so the tree is followed by parent PID).
sb_rss() {
  local pid
  pid="$(sb_pid "$1")"
  [[ -n "$pid" ]] && sb_pid_alive "$1" || { echo 0; return 0; }
  ps -eo pid=,ppid=,rss= | awk -v root="$pid" '
    { par[$1] = $2; rss[$1] = $3 }
    END {
      in_tree[root] = 1; changed = 1
      while (changed) {
        changed = 0
        for (p in par) if (!(p in in_tree) && (par[p] in in_tree)) { in_tree[p] = 1; changed = 1 }
      }
      for (p in in_tree) s += rss[p]
      print s + 0
    }'
}

sb_wait_tcp() {
  local host="$1" port="$2" timeout="${3:-30}" end
  end=$((SECONDS + timeout))
  while ((SECONDS <= end)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

sb_wait_http() {
  local url="$1" timeout="${2:-30}" end
  end=$((SECONDS + timeout))
  while ((SECONDS <= end)); do
    if curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  return 1
}

# sb_wait_fail NAME MESSAGE: explain a timeout with the last lines of NAME's log.
sb_wait_fail() {
  local name="$1"
  shift
  sb_log "ERROR: $*"
  local log="$STATE/logs/$name.log"
  if [[ -f "$log" ]]; then
    sb_log "last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    /' >&2
  fi
  return 1
}

# ---------------------------------------------------------------- python venvs

# A venv at $1, made by the interpreter $2 with --system-site-packages (so it sees apt's
# torch), holding exactly the hashed requirements file $3: by version and hash, --no-deps (the
# file is the closure; nothing is resolved). $4 names the requirements in its stamp
# ($1/.requirements); $5 is the import line that proves it works. Kept as it is when the
# stamp, the system-site flag and the imports agree; a venv made without the flag is made
# again; otherwise the pins are installed into the working venv (payloads may be running).
sb_venv_by_hash() {
  local dir="$1" base="$2" req="$3" label="$4" imports="$5" want have
  [[ -x "$base" ]] || sb_apt python3
  "$base" -c 'import venv, ensurepip' 2>/dev/null || sb_apt python3-venv
  want="$label sha256=$(sha256sum "$req" | cut -d' ' -f1) system-site-packages"
  have="$(cat "$dir/.requirements" 2>/dev/null || true)"
  if [[ -x "$dir/bin/python" && "$want" == "$have" ]] && _sb_venv_sees_system "$dir" &&
    "$dir/bin/python" -c "$imports" 2>/dev/null; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$dir")"
  if [[ -x "$dir/bin/python" ]] && _sb_venv_sees_system "$dir" &&
    "$dir/bin/python" -c 'import pip' 2>/dev/null; then
    sb_log "updating $dir ($want)"
  else
    sb_log "creating $dir with --system-site-packages ($want)"
    "$base" -m venv --clear --system-site-packages "$dir"
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
    --no-deps -r "$req" >&2
  printf '%s' "$want" >"$dir/.requirements"
  chmod -R a+rX "$dir"
}

_sb_venv_sees_system() {
  grep -qxE 'include-system-site-packages *= *true' "$1/pyvenv.cfg" 2>/dev/null
}

# ---------------------------------------------------------------- packages

_SB_APT_UPDATED=0
sb_apt() {
  local missing=() p status
  for p in "$@"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  # Never let a package's init script start a daemon on its default port.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local need_update=0
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    need_update=1
  else
    for p in "${missing[@]}"; do
      if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: (none)' ||
        [[ -z "$(apt-cache policy "$p" 2>/dev/null)" ]]; then
        need_update=1
      fi
    done
  fi
  if ((need_update && !_SB_APT_UPDATED)); then
    sb_log "apt-get update"
    apt-get update -qq >&2
    _SB_APT_UPDATED=1
  fi
  sb_log "apt-get install ${missing[*]}"
  local rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
  if ((rc != 0 && !_SB_APT_UPDATED)); then
    sb_log "install failed, retrying after apt-get update"
    apt-get update -qq >&2
    _SB_APT_UPDATED=1
    rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
  fi
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || sb_die "apt-get install ${missing[*]} failed (rc $rc)"
}

# sb_need_cmd CMD PKG: install PKG if CMD is missing
sb_need_cmd() {
  command -v "$1" >/dev/null 2>&1 || sb_apt "$2"
}

# The tools lib.sh and the service files use, for minimal images (e.g. debootstrap minbase).
sb_base_tools() {
  sb_need_cmd curl curl
  sb_need_cmd ps procps
  sb_need_cmd setpriv util-linux
  sb_need_cmd mountpoint util-linux
  sb_need_cmd losetup mount
  sb_need_cmd blkid util-linux
  sb_need_cmd mkfs.ext4 e2fsprogs
  sb_need_cmd base64 coreutils
}

# ---------------------------------------------------------------- env file and secrets

sb_rand() {
  local n="${1:-32}" s=""
  while ((${#s} < n)); do
    s+="$(head -c 96 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')"
  done
  printf '%s' "${s:0:n}"
}

sb_env_get() {
  local key="$1"
  [[ -f "$SB_ENV_FILE" ]] || return 0
  local line val=""
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" == "$key="* ]]; then
      val="${line#"$key="}"
    fi
  done <"$SB_ENV_FILE"
  # undo the single quotes sb_env_set adds around unsafe values
  if [[ "$val" == \'*\' ]]; then
    val="${val:1:${#val}-2}"
    val="${val//\'\\\'\'/\'}"
  fi
  printf '%s' "$val"
}

sb_env_set() {
  local key="$1" value="$2"
  [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || sb_die "sb_env_set: bad key '$key'"
  local line
  if [[ "$value" =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
    line="$key=$value"
  else
    line="$key='${value//\'/\'\\\'\'}'"
  fi
  install -d -m 0755 "$STATE"
  local old_umask
  old_umask="$(umask)"
  umask 077
  touch "$SB_ENV_FILE"
  chmod 600 "$SB_ENV_FILE"
  if grep -qxF -- "$line" "$SB_ENV_FILE"; then
    umask "$old_umask"
    return 0
  fi
  local tmp="$SB_ENV_FILE.tmp.$$"
  { grep -v -- "^$key=" "$SB_ENV_FILE" || true; printf '%s\n' "$line"; } >"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$SB_ENV_FILE"
  umask "$old_umask"
}

# ---------------------------------------------------------------- files and users

SB_CHANGED=0
sb_write_file() {
  local path="$1" mode="$2" owner="${3:-}" tmp
  tmp="$(mktemp "$(dirname "$path")/.sbtmp.XXXXXX")"
  cat >"$tmp"
  SB_CHANGED=0
  if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
    SB_CHANGED=1
  fi
  chmod "$mode" "$path"
  [[ -z "$owner" ]] || chown "$owner" "$path"
  return 0
}

sb_ensure_user() {
  local user="$1"
  if ! id -u "$user" >/dev/null 2>&1; then
    sb_log "creating user $user"
    useradd --create-home --shell /bin/bash --user-group "$user"
  fi
  local home
  home="$(getent passwd "$user" | cut -d: -f6)"
  if [[ -n "$home" && ! -d "$home" ]]; then
    install -d -m 0750 -o "$user" -g "$(id -gn "$user")" "$home"
  fi
}

# ---------------------------------------------------------------- python

sb_python() {
  if [[ -n "${MLOPS_PYTHON:-}" ]]; then
    printf '%s' "$MLOPS_PYTHON"
  elif [[ -x "$SB_REPO_ROOT/.venv/bin/python" ]]; then
    printf '%s' "$SB_REPO_ROOT/.venv/bin/python"
  else
    printf '%s' "python3"
  fi
}

sb_venv_bin() {
  local tool="$1" py dir
  py="$(sb_python)"
  if [[ "$py" == */* ]]; then
    dir="$(dirname "$py")"
    if [[ -x "$dir/$tool" ]]; then
      printf '%s' "$dir/$tool"
      return 0
    fi
  fi
  command -v "$tool" 2>/dev/null || return 1
}

# ---------------------------------------------------------------- loopback-only binds

# Prints the path of an LD_PRELOAD library that rewrites wildcard bind() calls to loopback,
# building it from bind-loopback.c (needs gcc; installed if missing) when absent or outdated.
# For daemons without a listen-address option: sb_start X env LD_PRELOAD="$(sb_loopback_preload)" ...
sb_loopback_preload() {
  local src="$SB_DIR/bind-loopback.c" out="$STATE/lib/bind-loopback.so"
  if [[ ! -s "$out" || "$src" -nt "$out" ]]; then
    command -v gcc >/dev/null 2>&1 || sb_apt gcc libc6-dev
    install -d -m 0755 "$STATE/lib"
    gcc -shared -fPIC -O2 -Wall -o "$out.tmp" "$src" -ldl >&2 || sb_die "cannot build $out"
    chmod 0644 "$out.tmp"
    mv -f "$out.tmp" "$out"
  fi
  printf '%s' "$out"
}

# The 127.0.0.1 ports one file_sd target file names.
sb_target_ports() {
  grep -o '127\.0\.0\.1:[0-9]\+' "$1" 2>/dev/null | cut -d: -f2 | sort -u
}

# Removes the target files none of whose servers answers /metrics (files younger than 2 minutes
# stay: their server may still be starting). A server that died, or a state directory kept from
# another boot, must not leave Prometheus a target that is down for good.
sb_prune_dead_targets() {
  local f port live
  for f in "$SB_PROM_TARGETS"/*.json; do
    [[ -f "$f" ]] || continue
    [[ -n "$(find "$f" -mmin -2 2>/dev/null)" ]] && continue
    live=0
    for port in $(sb_target_ports "$f"); do
      curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null && live=1
    done
    if ((!live)); then
      port="$(sb_target_ports "$f" | tr '\n' ' ')"
      sb_log "prometheus: removing $(basename "$f"): ${port:+no server answers /metrics on }${port:-no target in it}"
      rm -f "$f"
    fi
  done
}

# Stops the model servers announced in the target files (the process listening on each port,
# only if it runs payloads/serve_mnist.py, with its process group) and removes the files.
sb_stop_announced_servers() {
  local f port pid pgid i
  for f in "$SB_PROM_TARGETS"/*.json; do
    [[ -f "$f" ]] || continue
    for port in $(sb_target_ports "$f"); do
      for pid in $(ss -Htlnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]\+' | cut -d= -f2 | sort -u); do
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'serve_mnist\.py' || continue
        pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -dc '0-9')"
        [[ -n "$pgid" && "$pgid" -gt 1 && "$pgid" != "$(ps -o pgid= -p $$ | tr -dc '0-9')" ]] || pgid=""
        sb_log "stopping the model server on 127.0.0.1:$port (pid $pid)"
        if [[ -n "$pgid" ]]; then kill -TERM -- "-$pgid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
        for ((i = 0; i < 100; i++)); do
          _sb_alive_pid "$pid" || break
          sleep 0.1
        done
        if _sb_alive_pid "$pid"; then
          if [[ -n "$pgid" ]]; then kill -KILL -- "-$pgid" 2>/dev/null || true; else kill -KILL "$pid" 2>/dev/null || true; fi
        fi
      done
    done
    rm -f "$f"
  done
}
