# shellcheck shell=bash
# Apptainer on the sandbox's HPC side: the REAL apptainer 1.4 binary from Debian sid's package
# (Debian 12/13 and PyPI have none). It needs glibc >= 2.38, so sid's libc6, libseccomp2 and
# libsqlite3-0 are extracted next to it and its two ELF programs (apptainer, starter) are
# pointed at them with patchelf (interpreter + RPATH). Apptainer relocates itself when it is
# not installed setuid: config, libexec and session dirs resolve under $SB_APPTAINER_DIR/usr.
# Root cannot exec containers here (the sandbox drops CAP_SYS_RESOURCE from root's bounding
# set); the training user `mlops` runs it unprivileged in a user namespace, and builds with
# --fakeroot through /etc/subuid, as users do on real clusters.
#
# Also the CONTAINER REGISTRY STAND-IN: an OCI image layout built from this machine's own
# files (standins/registry_image.py) that the sandbox catalog pulls instead of nvcr.io.
SVC_NAME=apptainer
SB_APPTAINER_DIR="${MLOPS_SANDBOX_APPTAINER:-/opt/mlops-assets/apptainer}"
SB_APPTAINER_PKGS=(apptainer=1.4.5-2 libc6 libseccomp2 libsqlite3-0)
SB_APPTAINER_USER=mlops
SB_REGISTRY_IMAGE="${MLOPS_SANDBOX_REGISTRY_IMAGE:-/opt/mlops-assets/registry/pytorch-standin}"
SB_HPC_SITE="${MLOPS_SANDBOX_HPC_PYTHON:-/opt/mlops-assets/hpc-python}/lib/python3.11/site-packages"

_apptainer_bin() { printf '%s/usr/bin/apptainer' "$SB_APPTAINER_DIR"; }

_apptainer_as_user() {
  setpriv --reuid="$SB_APPTAINER_USER" --regid="$(id -g "$SB_APPTAINER_USER")" --init-groups \
    env -i HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin "$@"
}

# Downloads the sid .debs with a private apt configuration: the system's sources stay bookworm.
_apptainer_download() {
  local dir="$1" apt="$STATE/apt-sid"
  install -d -m 0755 "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    >"$apt/sources.list.d/sid.sources"
  local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root -q)
  sb_log "apt-get update (Debian sid lists, private to the sandbox: $apt)"
  apt-get "${opts[@]}" update >&2
  if ! (cd "$dir" && apt-get "${opts[@]}" download "${SB_APPTAINER_PKGS[@]}" >&2); then
    sb_log "apptainer ${SB_APPTAINER_PKGS[0]#*=} is no longer in sid; taking sid's current one"
    (cd "$dir" && apt-get "${opts[@]}" download apptainer "${SB_APPTAINER_PKGS[@]:1}" >&2)
  fi
}

_apptainer_install_binary() {
  if "$(_apptainer_bin)" --version >/dev/null 2>&1; then
    return 0
  fi
  local tmp new lib deb
  tmp="$(mktemp -d)"
  new="$SB_APPTAINER_DIR.new"
  rm -rf "$new"
  _apptainer_download "$tmp"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$new"; done
  rm -rf "$tmp"
  lib="$SB_APPTAINER_DIR/usr/lib/x86_64-linux-gnu"
  # relocated layout: <prefix>/usr/etc/apptainer; some paths resolve from usr/lib/../
  install -d "$new/usr/etc" "$new/usr/var/lib/apptainer/mnt/session"
  mv "$new/etc/apptainer" "$new/usr/etc/apptainer"
  ln -s ../etc "$new/usr/lib/etc"
  ln -s ../var "$new/usr/lib/var"
  local elf
  for elf in "$new/usr/bin/apptainer" "$new/usr/lib/x86_64-linux-gnu/apptainer/bin/starter"; do
    patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" "$elf"
  done
  chmod -R a+rX "$new"
  rm -rf "$SB_APPTAINER_DIR"
  mv "$new" "$SB_APPTAINER_DIR"
  "$(_apptainer_bin)" --version >&2 || { sb_log "ERROR: the relocated apptainer does not run"; return 1; }
}

svc_install() {
  sb_apt squashfs-tools patchelf uidmap
  sb_need_cmd busybox busybox-static  # the stand-in image's /bin/sh
  sb_ensure_user "$SB_APPTAINER_USER"
  # --fakeroot builds map the user's subordinate ids
  if ! grep -q "^$SB_APPTAINER_USER:" /etc/subuid 2>/dev/null || ! grep -q "^$SB_APPTAINER_USER:" /etc/subgid 2>/dev/null; then
    usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$SB_APPTAINER_USER"
  fi
  _apptainer_install_binary
  ln -sfn "$(_apptainer_bin)" /usr/local/bin/apptainer
  [[ -d "$SB_HPC_SITE/dagster_pipes" ]] || sb_die "$SB_HPC_SITE has no dagster_pipes: run 'sandbox.sh up hpc-python' first"
  install -d -m 0755 "$(dirname "$SB_REGISTRY_IMAGE")"
  /usr/bin/python3 "$SB_DIR/standins/registry_image.py" build --out "$SB_REGISTRY_IMAGE" --site-packages "$SB_HPC_SITE" >&2
}

svc_start() {
  sb_env_set MLOPS_REGISTRY_STANDIN_IMAGE "$SB_REGISTRY_IMAGE"
}

svc_wait() {
  _apptainer_as_user apptainer --version >/dev/null ||
    { sb_log "ERROR: $SB_APPTAINER_USER cannot run /usr/local/bin/apptainer"; return 1; }
  [[ -r "$SB_REGISTRY_IMAGE/index.json" ]] || { sb_log "ERROR: no registry stand-in image at $SB_REGISTRY_IMAGE"; return 1; }
}

svc_status() {
  local v
  if v="$(_apptainer_as_user apptainer --version 2>/dev/null)" && [[ -r "$SB_REGISTRY_IMAGE/index.json" ]]; then
    echo "$SVC_NAME up /usr/local/bin/apptainer ${v##* } (Debian sid package, relocated to $SB_APPTAINER_DIR) registry-standin=$SB_REGISTRY_IMAGE"
  else
    echo "$SVC_NAME down /usr/local/bin/apptainer -"
    return 1
  fi
}
