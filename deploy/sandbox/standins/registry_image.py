"""CONTAINER REGISTRY STAND-IN: builds the image that the sandbox "pulls" instead of
nvcr.io/nvidia/pytorch:24.07-py3 (9 GB, unreachable offline).

The image is a real OCI image layout (oci-layout, index.json, manifest, config, one layer)
made from a small root filesystem assembled out of this machine's own files: busybox, the
system python3 with its standard library and shared libraries, and dagster-pipes copied from
the HPC venv. `apptainer pull x.sif oci:<this directory>` converts it as it would a registry image.
(An oci-archive tar would not do: unpacking it as a non-root user fails on chown.) It holds no torch: the sandbox catalog expects what is really inside.

    registry_image.py build --out /opt/mlops-assets/registry/pytorch-standin \
        --site-packages /opt/mlops-assets/hpc-python/lib/python3.11/site-packages

Idempotent: rebuilds only when this file or the inputs' list changed (.stamp inside --out).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

TITLE = "mlops-assets sandbox stand-in for nvcr.io/nvidia/pytorch:24.07-py3"
BUSYBOX_APPLETS = (
    "sh",
    "ls",
    "cat",
    "echo",
    "env",
    "id",
    "test",
    "true",
    "false",
    "mkdir",
    "rm",
    "wc",
    "head",
)
STDLIB_SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__pycache__",
    "site-packages",
    "dist-packages",
}
PIP_PACKAGES = ("dagster_pipes",)


def _libs_of(binaries: list[Path]) -> set[Path]:
    """Shared libraries the binaries load, as ldd resolves them on this machine."""
    libs: set[Path] = set()
    for b in binaries:
        out = subprocess.run(["ldd", str(b)], capture_output=True, text=True, check=False).stdout
        for m in re.finditer(r"(/\S+\.so[^\s]*)", out):
            libs.add(Path(m.group(1)))
    return libs


def _copy(src: Path, root: Path) -> None:
    dst = root / src.relative_to("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.resolve(), dst)


def assemble_rootfs(root: Path, site_packages: Path) -> None:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    if not busybox.exists():
        sys.exit("busybox not found: apt-get install busybox-static")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin/busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for d in ("tmp", "proc", "sys", "dev", "etc", "var/tmp", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(f'NAME="{TITLE}"\nID=mlops-sandbox\n')

    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = Path(f"/usr/bin/python{ver}")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    _copy(python, root)
    (root / "usr/bin/python3").symlink_to(f"python{ver}")
    dst_lib = root / stdlib.relative_to("/")
    shutil.copytree(
        stdlib,
        dst_lib,
        ignore=lambda d, names: [n for n in names if n in STDLIB_SKIP],
        symlinks=True,
    )
    dynload = sorted((stdlib / "lib-dynload").glob("*.so"))
    libs = _libs_of([python, busybox, *dynload])  # busybox may be the dynamic build
    for lib in libs:
        _copy(lib, root)
    # glibc's compatibility stubs: host binaries that `--nv` binds in (nvidia-smi) link them
    libc_dir = next(p for p in libs if p.name.startswith("libc.so")).parent
    for stub in ("libpthread.so.0", "libdl.so.2", "librt.so.1"):
        if (libc_dir / stub).exists():
            _copy(libc_dir / stub, root)
    site = root / "usr/lib/python3/dist-packages"  # on Debian's sys.path, unlike site-packages
    site.mkdir(parents=True)
    for pkg in PIP_PACKAGES:
        shutil.copytree(
            site_packages / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__")
        )
        for info in site_packages.glob(f"{pkg}-*.dist-info"):
            shutil.copytree(info, site / info.name)


def _layer(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return digest


def write_oci_layout(root: Path, out: Path, labels: dict[str, str]) -> None:
    """An OCI image layout directory (what `apptainer pull x.sif oci:<dir>` reads)."""
    layer = _layer(root)
    layer_gz = gzip.compress(layer, compresslevel=6, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "blobs/sha256").mkdir(parents=True)
    layer_digest = _blob(tmp, layer_gz)
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _blob(tmp, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{config_digest}",
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{layer_digest}",
                "size": len(layer_gz),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = _blob(tmp, manifest_bytes)
    (tmp / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest_bytes),
            }
        ],
    }
    (tmp / "index.json").write_text(json.dumps(index))
    for path in [tmp, *tmp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def build(out: Path, site_packages: Path) -> None:
    inputs = [
        Path(__file__).read_text(),
        sys.version,
        *sorted(str(p) for pkg in PIP_PACKAGES for p in site_packages.glob(f"{pkg}-*.dist-info")),
    ]
    stamp_text = hashlib.sha256("\n".join(inputs).encode()).hexdigest()
    stamp = out / ".stamp"
    if out.exists() and stamp.exists() and stamp.read_text() == stamp_text:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="registry-image-") as tmp:
        root = Path(tmp) / "rootfs"
        assemble_rootfs(root, site_packages)
        labels = {
            "org.opencontainers.image.title": TITLE,
            "org.opencontainers.image.version": "24.07-sandbox",
            "org.mlops-assets.standin": "true",
        }
        write_oci_layout(root, out, labels)
    stamp.write_text(stamp_text)
    print(f"built {out} ({sum(f.stat().st_size for f in out.rglob('*')) / 1e6:.1f} MB)")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--site-packages", type=Path, required=True)
    args = p.parse_args()
    build(args.out, args.site_packages)


if __name__ == "__main__":
    main()
