"""df / findmnt / stat parsers against outputs recorded on this machine and the H200 host."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core import storage as sg

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    """Fixture text without its ``#@`` provenance header."""
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


def test_df_posix_bytes_local() -> None:
    shm, root = sg.parse_df(fixture("df_P_B1_local_debian12.txt"))
    assert shm.mount_point == "/dev/shm"
    assert shm.filesystem == "tmpfs"
    assert shm.fstype is None
    assert shm.size_bytes == 25276510208
    assert shm.used_bytes == 0
    assert shm.avail_fraction == 1.0
    assert root.mount_point == "/"
    assert root.filesystem == "/dev/vda"
    assert root.use_percent == 24
    # ext4 reserves blocks: used + avail < size, and df's Use% is used/(used+avail).
    assert root.used_bytes + root.avail_bytes < root.size_bytes
    assert round(100 * (1 - root.avail_fraction)) in (root.use_percent, root.use_percent - 1)


def test_df_posix_bytes_h200_host() -> None:
    root, shm = sg.parse_df(fixture("df_P_B1_h200_ubuntu24.04.txt"))
    assert root.size_bytes == 270553174016
    assert shm.size_bytes == 274877906944


def test_df_output_columns_with_type() -> None:
    shm, root = sg.parse_df(fixture("df_output_B1_local_debian12.txt"))
    assert shm.fstype == "tmpfs"
    assert root.fstype == "ext4"
    assert root.size_bytes == 270553174016
    assert sg.DF_OUTPUT_COLUMNS.split(",")[1] == "fstype"


def test_df_block_sizes_and_spaces() -> None:
    text = (
        "Filesystem     1024-blocks  Used Available Capacity Mounted on\n"
        "beegfs_nodev   1000  250  750  25% /mnt/bee gfs\n"
    )
    (e,) = sg.parse_df(text)
    assert e.size_bytes == 1000 * 1024
    assert e.mount_point == "/mnt/bee gfs"
    assert e.use_percent == 25


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "df: /beegfs: No such file or directory",
        "Filesystem 1-blocks Used Available Capacity Mounted on\n",
        "Filesystem Size Used Avail Use% Mounted on\n/dev/x 1G 1G 0 100% /",
        "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/x 1 2 3 /",
        "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/x a 2 3 4% /",
    ],
)
def test_df_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sg.parse_df(bad)


def test_df_inodes_local() -> None:
    (root,) = sg.parse_df_inodes(fixture("df_P_i_local_debian12.txt"))
    assert root.inodes == 16777216
    assert root.free is not None and root.free > 0
    assert root.use_percent == 3
    dash = "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/sdb1 - - - - /data\n"
    (d,) = sg.parse_df_inodes(dash)
    assert d.inodes is None and d.use_percent is None


def test_findmnt_json_root() -> None:
    for name in ("findmnt_J_root_local_debian12.json", "findmnt_J_root_h200_ubuntu24.04.json"):
        m = sg.parse_findmnt_json(fixture(name))
        assert m.target == "/"
        assert m.fstype == "ext4"
        assert m.source == "/dev/vda"
        assert not m.read_only
        assert m.option("resuid") == "65534"
        assert m.option("relatime") == ""
        assert m.option("noexec") is None
        assert m.size_bytes is None


def test_findmnt_json_stacked_with_sizes() -> None:
    m = sg.parse_findmnt_json(fixture("findmnt_J_sizes_stacked_local_debian12.json"))
    assert m.target == "/dev/shm"
    assert m.fstype == "tmpfs"
    assert m.size_bytes == 25276510208
    assert m.used_bytes == 0
    assert m.avail_bytes == 25276510208


def test_findmnt_json_children_and_string_sizes() -> None:
    doc = {
        "filesystems": [
            {
                "target": "/",
                "source": "/dev/sda1",
                "fstype": "ext4",
                "options": "rw",
                "children": [
                    {
                        "target": "/beegfs",
                        "source": "beegfs_nodev",
                        "fstype": "beegfs",
                        "options": "ro,relatime,cfgFile=/etc/beegfs/beegfs-client.conf",
                        "size": "1000",
                        "used": "10",
                        "avail": "990",
                    }
                ],
            }
        ]
    }
    m = sg.parse_findmnt_json(json.dumps(doc))
    assert m.fstype == "beegfs"
    assert m.read_only
    assert m.option("cfgFile") == "/etc/beegfs/beegfs-client.conf"
    assert m.avail_bytes == 990


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not json",
        "[]",
        '{"filesystems": []}',
        '{"filesystems": [{"target": "/"}]}',
        '{"filesystems": [{"target": "/a", "source": "x", "fstype": "y"},'
        ' {"target": "/b", "source": "x", "fstype": "y"}]}',
        '{"filesystems": [{"target": "/", "source": "x", "fstype": "y", "size": "10G"}]}',
    ],
)
def test_findmnt_json_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sg.parse_findmnt_json(bad)


def test_findmnt_text() -> None:
    m = sg.parse_findmnt(fixture("findmnt_n_root_local_debian12.txt"))
    assert (m.target, m.fstype, m.source) == ("/", "ext4", "/dev/vda")
    stacked = sg.parse_findmnt(fixture("findmnt_n_stacked_local_debian12.txt"))
    assert stacked.target == "/dev/shm"
    assert stacked.option("size") == "24684092k"
    spaced = sg.parse_findmnt("/mnt/my\\x20data ext4 /dev/sdb1 rw,noexec\n")
    assert spaced.target == "/mnt/my data"
    assert spaced.option("noexec") == ""


@pytest.mark.parametrize(
    "bad",
    ["", "/ ext4 /dev/vda", "├─/boot ext4 /dev/sda1 rw", "/a ext4 x rw\n/b ext4 y rw"],
)
def test_findmnt_text_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sg.parse_findmnt(bad)


def test_stat_local() -> None:
    st_ = sg.parse_stat(fixture("stat_tmp_local_debian12.txt"))
    assert (st_.owner, st_.group, st_.mode) == ("root", "root", 0o1777)
    assert st_.sticky and st_.world_writable
    assert st_.mode_octal == "1777"
    home = sg.parse_stat("mlops mlops 750\n")
    assert not home.world_writable and home.mode == 0o750
    assert sg.parse_stat("UNKNOWN UNKNOWN 755").owner == "UNKNOWN"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "stat: cannot statx '/beegfs': No such file or directory",
        "root root 999",
        "root root",
        "root root 755\nroot root 755",
    ],
)
def test_stat_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sg.parse_stat(bad)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=120),
        st.lists(
            st.sampled_from(
                [
                    "Filesystem",
                    " Type",
                    " 1-blocks",
                    " 1024-blocks",
                    " Used",
                    " 5%",
                    " /",
                    "\n",
                    " 12",
                    "{",
                    '"filesystems"',
                    ":",
                    "[",
                    "]",
                    "}",
                    '"target"',
                    '"/"',
                    ",",
                    "root",
                    " 755",
                    "\\x20",
                    "-",
                ]
            ),
            max_size=30,
        ).map("".join),
    )
)
def test_storage_parsers_raise_only_value_error(text: str) -> None:
    for parse in (
        sg.parse_df,
        sg.parse_df_inodes,
        sg.parse_findmnt,
        sg.parse_findmnt_json,
        sg.parse_stat,
    ):
        with contextlib.suppress(ValueError):
            parse(text)
