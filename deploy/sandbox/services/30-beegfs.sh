# shellcheck shell=bash
# BeeGFS stand-in: a 4 GiB sparse ext4 image loop-mounted at /mnt/sandbox-beegfs.
# A real mount point with a real filesystem type and free-space figure, but not BeeGFS.
SVC_NAME=beegfs
SB_BEEGFS_IMG="$STATE/data/beegfs.img"
SB_BEEGFS_MNT="${MLOPS_SANDBOX_BEEGFS_MOUNT:-/mnt/sandbox-beegfs}"
SB_BEEGFS_SIZE=4G
SB_BEEGFS_USER=mlops
SB_BEEGFS_DIRS=(datasets models scripts configs containers jobs huggingface)

svc_install() {
  command -v mkfs.ext4 >/dev/null 2>&1 || sb_apt e2fsprogs
  command -v losetup >/dev/null 2>&1 || sb_apt mount
}

_beegfs_mounted() {
  mountpoint -q "$SB_BEEGFS_MNT" 2>/dev/null
}

svc_start() {
  sb_ensure_user "$SB_BEEGFS_USER"
  install -d -m 0755 "$STATE/data"
  if [[ ! -f "$SB_BEEGFS_IMG" ]] || [[ "$(blkid -o value -s TYPE "$SB_BEEGFS_IMG" 2>/dev/null)" != ext4 ]]; then
    if _beegfs_mounted; then
      sb_log "ERROR: $SB_BEEGFS_MNT is mounted but $SB_BEEGFS_IMG is no ext4 image"
      return 1
    fi
    sb_log "creating $SB_BEEGFS_SIZE sparse ext4 image $SB_BEEGFS_IMG"
    rm -f "$SB_BEEGFS_IMG"
    truncate -s "$SB_BEEGFS_SIZE" "$SB_BEEGFS_IMG"
    mkfs.ext4 -q -F -L sandbox-beegfs -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$SB_BEEGFS_IMG"
  fi
  install -d -m 0755 "$SB_BEEGFS_MNT"
  if ! _beegfs_mounted; then
    mount -o loop,noatime "$SB_BEEGFS_IMG" "$SB_BEEGFS_MNT"
  fi
  chown root:root "$SB_BEEGFS_MNT"
  chmod 0755 "$SB_BEEGFS_MNT"
  local d grp
  grp="$(id -gn "$SB_BEEGFS_USER")"
  for d in "${SB_BEEGFS_DIRS[@]}"; do
    install -d -m 0755 -o "$SB_BEEGFS_USER" -g "$grp" "$SB_BEEGFS_MNT/$d"
  done
  sb_env_set MLOPS_BEEGFS_ROOT "$SB_BEEGFS_MNT"
}

svc_wait() {
  _beegfs_mounted || { sb_log "ERROR: $SB_BEEGFS_MNT is not mounted"; return 1; }
  local probe="$SB_BEEGFS_MNT/jobs/.sandbox-probe.$$"
  setpriv --reuid="$SB_BEEGFS_USER" --regid="$(id -g "$SB_BEEGFS_USER")" --init-groups \
    sh -c 'echo ok > "$1" && rm -f "$1"' sh "$probe" ||
    { sb_log "ERROR: $SB_BEEGFS_USER cannot write to $SB_BEEGFS_MNT/jobs"; return 1; }
}

svc_status() {
  local fstype avail
  if _beegfs_mounted; then
    fstype="$(findmnt -n -o FSTYPE --target "$SB_BEEGFS_MNT")"
    avail="$(df -B1 --output=avail "$SB_BEEGFS_MNT" | tail -n 1 | tr -d ' ')"
    echo "$SVC_NAME up $SB_BEEGFS_MNT ${fstype:-unknown} avail_bytes=$avail image=$SB_BEEGFS_IMG"
  else
    echo "$SVC_NAME down $SB_BEEGFS_MNT -"
    return 1
  fi
}

svc_stop() {
  if _beegfs_mounted; then
    sb_log "unmounting $SB_BEEGFS_MNT"
    umount "$SB_BEEGFS_MNT" || { sb_log "umount busy; lazy unmount"; umount -l "$SB_BEEGFS_MNT"; }
  fi
}
