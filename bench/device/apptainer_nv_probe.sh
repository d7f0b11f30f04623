#!/bin/bash
# --nv on a real H200: the relocated Debian-sid apptainer 1.4.5 and the sandbox's stand-in SIF.
set -u
PROBE="$(python3 -c 'import ast,sys; t=ast.parse(open("mlops_assets/core/probes/containers.py").read()); print(next(n.value.value for n in t.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "")=="NV_PROBE"))')"
{
echo "== host nvidia-smi -L"; nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
tar -C / -xJf .device-carry/apptainer.tar.xz && ln -sf /opt/mlops-assets/apptainer/usr/bin/apptainer /usr/local/bin/apptainer
cp -r .device-carry/sq /opt/sq && ln -sf /opt/sq/bin/unsquashfs /usr/local/bin/unsquashfs && ln -sf /opt/sq/bin/mksquashfs /usr/local/bin/mksquashfs && unsquashfs -v 2>&1 | head -1
echo "== apptainer --version"; apptainer --version
echo "== id"; id; cat /proc/sys/user/max_user_namespaces; uname -r
cp .device-carry/standin.sif /tmp/img.sif; chmod 644 /tmp/img.sif
echo "== root: exec --nv nvidia-smi -L"; apptainer exec --nv /tmp/img.sif nvidia-smi -L; echo "rc=$?"
echo "== user: exec WITHOUT --nv nvidia-smi -L"; su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH apptainer exec /tmp/img.sif nvidia-smi -L'; echo "rc=$?"
echo "== root: NV_PROBE"; sh -c "$PROBE" sh /tmp/img.sif; echo "rc=$?"
useradd -m probe >/dev/null 2>&1; grep -q '^probe:' /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 probe 2>/dev/null
echo "== user: exec --nv nvidia-smi -L"; su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH apptainer exec --nv /tmp/img.sif nvidia-smi -L'; echo "rc=$?"
echo "== user: NV_PROBE"; su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH sh -c "$0" sh /tmp/img.sif' "$PROBE"; echo "rc=$?"
echo "== user: exec --nv python3 (dev files)"; su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH apptainer exec --nv /tmp/img.sif python3 -c "import os; print(sorted(f for f in os.listdir(\"/dev\") if f.startswith(\"nvidia\")))"'; echo "rc=$?"
} > "$OUT/nv_probe_h200.txt" 2>&1
cat "$OUT/nv_probe_h200.txt"
{
echo "== user: NV_PROBE with APPTAINER_BIND=/usr/local/nvidia (this host's nvidia-smi is a wrapper into /usr/local/nvidia)"
su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH APPTAINER_BIND=/usr/local/nvidia sh -c "$0" sh /tmp/img.sif' "$PROBE"; echo "rc=$?"
echo "== the trap: exec --nv with the driver hidden (NVIDIA_VISIBLE_DEVICES=void is not honoured by --nv; use a bind of /dev/null over nvidia-smi)"
su probe -s /bin/sh -c 'cd /tmp && PATH=/usr/local/bin:$PATH apptainer exec --nv /tmp/img.sif true; echo "exec --nv true rc=$?"'
} >> "$OUT/nv_probe_h200.txt" 2>&1
tail -n 30 "$OUT/nv_probe_h200.txt"
