"""df / findmnt / beegfs-ctl parsers (the ones probes/hpc.py uses) against outputs recorded on this
machine and the H200 host; the public BeeGFS outputs are in the corpus (test_corpus_stack.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.parse import storage as sg

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
                    "TargetID",
                    " Reachability",
                    " Consistency",
                    " NodeID",
                    "========",
                    " Online",
                ]
            ),
            max_size=30,
        ).map("".join),
    )
)
def test_storage_parsers_raise_only_value_error(text: str) -> None:
    for parse in (
        sg.parse_df,
        sg.parse_findmnt,
        sg.parse_beegfs_targets,
    ):
        with contextlib.suppress(ValueError):
            parse(text)
