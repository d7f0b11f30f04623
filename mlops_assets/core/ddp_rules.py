"""Judging multi-node DDP smoke results, and naming the cause of their communication
trouble: pure, standard library only.

The ``mnist_ddp`` payload (and ``cifar_ddp``, MLOPS-2.1, through it) judges on the HPC side
with this file, shipped next to it as ``mlops_ddp_rules.py`` beside ``mlops_smoke_rules.py``
(core/smoke_rules.py), whose verdict words it uses. Tests import it from here.

- Communication warnings: every NCCL WARN, gloo W/E line and ProcessGroupNCCL error in a
  rank's stderr, each with its usual cause and fix (``COMM_CAUSES``).
- Before the process group starts: ranks on other machines whose hostname resolves to
  loopback under gloo, and ranks whose node has no CUDA device, named at the rendezvous.
- The run: every rank joined from its own node, the all-reduce exact, parameters identical
  after training, accuracy and time within the catalog's bars, no communication warning;
  the speedup over one node only warns. CIFAR-10 adds a finite loss and a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

try:  # shipped next to the payloads on the HPC side
    from mlops_smoke_rules import FAIL, FAKE_GPUS, NO_CUDA, WARN, not_finite, worst
except ImportError:  # running from the package (the orchestrator, tests)
    from mlops_assets.core.smoke_rules import FAIL, FAKE_GPUS, NO_CUDA, WARN, not_finite, worst

#: One NCCL debug line at WARN level: ``host:pid:tid [dev] file.cc:123 NCCL WARN <message>``.
_NCCL_WARN = re.compile(r"NCCL WARN\s*(?P<msg>.*)$")
#: A torch log line of the collectives at W or E level, as torch 1.x
#: (``[W ProcessGroupGloo.cpp:694]``) and 2.x
#: (``[rank7]:[W806 14:25:27.650991133 ProcessGroupGloo.cpp:524]``) print it. The c10d
#: store's socket lines (``socket.cpp``: a client retrying before the master listens) are
#: left out: the payload's own rendezvous check names a rank that never connects.
_TORCH_COMM_LOG = re.compile(
    r"\[(?P<level>[WE])(?:\d{3,4} [\d:.]+)? ?(?P<file>ProcessGroup(?:Gloo|NCCL)\.cpp|gloo/[\w/.]+"
    r"|[\w/.]*gloo[\w/.]*\.cc?):\d+\]\s*(?P<msg>.*)$"
)
#: Known warnings → (cause, usual fix), first match wins; the message is matched case-blind.
COMM_CAUSES: tuple[tuple[str, str, str], ...] = (
    (
        r"Unable to resolve hostname to a \(local\) address",
        "gloo could not resolve this node's hostname and bound to the loopback address",
        "make the hostname resolve to the inter-node address (/etc/hosts or DNS) or set "
        "GLOO_SOCKET_IFNAME to the inter-node interface",
    ),
    (
        r"Got completion from peer .*(?:status=|error )12\b",
        "InfiniBand/RoCE transport retries exceeded (status 12): the NICs cannot reach each other",
        "check routing and the GID index (NCCL_IB_GID_INDEX) for RoCE, `ibstat` link state and "
        "that `ibdev2netdev` pairs the same ports on both nodes",
    ),
    (
        r"Got completion from peer|Got async event",
        "an InfiniBand/RoCE completion or port error (a failed or flapping link)",
        "find the node whose port errors (`ibstat`, `ibqueryerrors`), reseat or replace the "
        "cable or NIC, then rerun",
    ),
    (
        r"Connection closed by remote peer|Socket recv failed|Connection reset",
        "a peer closed its connection: usually the echo of another rank that failed first",
        "read the first failing rank's log (its host is named in the line)",
    ),
    (
        r"Connect to .* failed|No route to host|Connection refused|Connection timed out"
        r"|connection abort|connectFullMesh failed|failed to connect|operation[= ]Connect",
        "a node could not open a TCP connection to its peer: a firewall or the wrong interface",
        "open the ports between the nodes (test with `nc`), and set NCCL_SOCKET_IFNAME / "
        "GLOO_SOCKET_IFNAME to the inter-node interface",
    ),
    (
        r"Cuda failure|CUDA error|cudaErrorr?",
        "a CUDA error inside the collective library",
        "check the GPU and driver on that node (nvidia-smi, Xid lines in `dmesg`)",
    ),
    (
        r"NET/IB|ibv_",
        "an InfiniBand verbs call failed",
        "check the IB stack on that node (`ibstat`, `ulimit -l` unlimited, the "
        "nvidia-peermem module for GPUDirect RDMA)",
    ),
)


def comm_warnings(text: str) -> list[dict[str, str]]:
    """Every NCCL WARN line, every gloo W/E log line and every ProcessGroupNCCL error line in
    ``text``, each with the usual cause and fix: ``[{line, source, message, cause, fix}]``.
    ProcessGroupNCCL's W lines (API advice such as "Guessing device ID") are not network
    trouble and are left out. Lines repeated by every rank stay separate (the count shows how
    many ranks saw it)."""
    out: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        m = _NCCL_WARN.search(line)
        source = "NCCL"
        if m is None:
            m = _TORCH_COMM_LOG.search(line)
            if m is not None and "NCCL" in m.group("file"):
                if m.group("level") == "W":  # torch's advice about the API, not the network
                    continue
                source = "torch NCCL"
            else:
                source = "gloo"
        if m is None:
            continue
        msg = m.group("msg").strip()
        cause, fix = "an unrecognised warning", "read the quoted line and the log around it"
        for pattern, known_cause, known_fix in COMM_CAUSES:
            if re.search(pattern, msg, re.I):
                cause, fix = known_cause, known_fix
                break
        out.append({"line": line, "source": source, "message": msg, "cause": cause, "fix": fix})
    return out


def loopback_binds(
    joined: Sequence[Mapping[str, Any]], backend: str, gloo_ifname: str | None
) -> list[str]:
    """Ranks on different machines whose hostname resolves to a loopback address (Debian's
    ``127.0.1.1 <hostname>`` line) or to nothing: gloo binds to what the hostname resolves to
    unless GLOO_SOCKET_IFNAME names an interface, so those ranks could never reach each other
    and the run would only time out. ``joined``: ``[{rank, node, hostname, address}]``. NCCL
    chooses its interfaces itself; ranks on one machine reach each other over loopback."""
    if backend != "gloo" or gloo_ifname or len({j.get("hostname") for j in joined}) < 2:
        return []
    out = []
    for j in joined:
        addr = j.get("address")
        if addr is None or str(addr).startswith("127.") or addr == "::1":
            seen = "resolves to nothing" if addr is None else f"resolves to {addr}"
            out.append(
                f"rank {j.get('rank')} on {j.get('node')}: hostname {j.get('hostname')} {seen}, "
                "so gloo would bind to loopback and the nodes could not connect; map the hostname "
                "to the inter-node address (/etc/hosts, DNS) or set GLOO_SOCKET_IFNAME"
            )
    return out


def ranks_without_gpu(joined: Sequence[Mapping[str, Any]]) -> list[str]:
    """Ranks whose node's driver reports no CUDA device, for a run rank 0 would start on
    NCCL (its own node has one): named at the rendezvous, instead of a process group that
    hangs until its timeout and a traceback that names no node."""
    return [
        f"rank {j.get('rank')} on {j.get('node')}: {j.get('cuda_error') or NO_CUDA}: check the "
        "driver there (nvidia-smi, the GRES the job got) or drain the node"
        for j in joined
        if not isinstance(j.get("cuda_devices"), int) or j["cuda_devices"] < 1
    ]


def describe_warning(w: Mapping[str, Any]) -> str:
    """One warning as a verdict's message: the line quoted, its usual cause and fix."""
    return f"{w.get('source')} warning: {w.get('line')!r}: {w.get('cause')}; fix: {w.get('fix')}"


def judge_ddp(
    result: Mapping[str, Any],
    *,
    min_accuracy: float,
    max_seconds: float,
    min_speedup: float | None = None,
    speedup_key: str = "smoke.ddp.min_speedup",
) -> dict[str, Any]:
    """Judge a multi-node DDP smoke ``result`` (the ``mnist_ddp`` payload's rank 0 report;
    ``cifar_ddp``'s through :func:`judge_cifar_ddp`; ``speedup_key`` names the catalog key).

    FAIL, each with its cause: a rank that never joined or whose node did not take part
    (named), fewer distinct nodes than asked for, a wrong all-reduce, parameters that differ
    across ranks after training, accuracy not above ``min_accuracy``, "Training Complete"
    not reached within ``max_seconds``, any NCCL WARN, gloo warning or ProcessGroupNCCL
    error (quoted, with its usual fix). WARN, said so: GPUs the catalog declares fake (gloo
    on CPUs), a run on fewer nodes than asked for because the partition had fewer usable
    (``nodes_available``), several SLURM nodes on one host (the ranks did not cross
    machines), a speedup over one node with no ``min_speedup`` to judge it or below it (a
    slow interconnect is not a wrong result), a run on 1 node (no speedup)."""
    messages: list[str] = []
    verdicts: list[str] = []

    def fail(msg: str) -> None:
        verdicts.append(FAIL)
        messages.append(msg)

    def warn(msg: str) -> None:
        verdicts.append(WARN)
        messages.append(msg)

    asked = _int(result.get("nodes_requested"))
    ran = _int(result.get("nodes"))
    for m in result.get("missing_ranks") or []:
        fail(
            f"rank {m.get('rank')} (node {m.get('node') or '?'}) never joined the rendezvous: "
            "check that node's slurmd and the job's stderr there (python or the payloads "
            "missing on it, a firewall to the master's port)"
        )
    if result.get("error") and not result.get("missing_ranks"):
        fail(str(result["error"]))
    ranks = result.get("ranks")
    if not isinstance(ranks, list) or not ranks:
        if not verdicts:
            fail("no rank reported its host: nothing ran across nodes")
        return {"verdict": worst(verdicts), "messages": messages}
    nodes = {str(r.get("node")) for r in ranks}
    hostnames = {str(r.get("hostname")) for r in ranks}
    expected = [str(n) for n in result.get("expected_nodes") or []]
    absent = [n for n in expected if n not in nodes]
    if absent:
        fail(f"node(s) {', '.join(absent)} of the job took no part in training")
    if ran is None or len(nodes) < ran:
        fail(f"{len(nodes)} distinct node(s) took part, the job ran on {ran}")
    if asked is not None and ran is not None and ran < asked:
        avail = result.get("nodes_available")
        warn(
            f"ran on {ran} node(s), {asked} asked: the partition has {avail} usable node(s); "
            "multi-node training across the asked nodes is untested"
        )
    if len(hostnames) < len(nodes):
        warn(
            f"{len(nodes)} SLURM nodes but {len(hostnames)} distinct hostname(s): several nodes "
            "share one machine, so the ranks did not cross machines"
        )
    if result.get("allreduce_exact") is not True:
        fail(
            f"all-reduce of known values was not exact ({result.get('allreduce_wrong_values')} "
            "wrong): the collective corrupts data"
        )
    if result.get("params_identical") is not True:
        fail(
            f"parameters differ across ranks after training ({result.get('param_mismatches')} "
            f"elements, max |diff| {result.get('param_max_abs_diff')}): gradients were not "
            "synchronised"
        )
    acc = result.get("accuracy")
    if not isinstance(acc, int | float) or not acc > min_accuracy:
        fail(f"test accuracy {acc} not above {min_accuracy}")
    secs = result.get("total_seconds")
    if not isinstance(secs, int | float) or secs >= max_seconds:
        fail(f"Training Complete not reached within {max_seconds:g} s (took {secs})")
    for w in result.get("comm_warnings") or []:
        fail(describe_warning(w))
    if result.get("cpu_fallback"):
        warn(
            f"{FAKE_GPUS} (the catalog's hpc.gpus.fake): trained over gloo on the CPUs; "
            "NCCL across nodes is untested"
        )
    speedup = result.get("speedup")
    if ran is not None and ran < 2:
        warn("1 node: no speedup over one node to measure")
    elif not isinstance(speedup, int | float):
        warn("speedup over one node not measured")
    elif min_speedup is None:
        warn(
            f"speedup {speedup:.2f}x over one node on {ran} nodes not judged: the catalog sets "
            f"no {speedup_key}"
        )
    elif speedup < min_speedup:
        warn(
            f"speedup {speedup:.2f}x over one node on {ran} nodes, below {min_speedup:g}x: "
            "the inter-node link limits training (check NCCL uses IB, not NET/Socket)"
        )
    return {"verdict": worst(verdicts), "messages": messages}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: what the sandbox mirror's generated CIFAR-10 says of itself (its readme.html)
CIFAR_STAND_IN_MARK = "GENERATED CIFAR-10 stand-in"


def judge_cifar_ddp(
    result: Mapping[str, Any],
    *,
    min_accuracy: float,
    max_seconds: float,
    min_speedup: float | None = None,
) -> dict[str, Any]:
    """Judge MLOPS-2.1 (CIFAR-10 ResNet-18 under DDP, the ``cifar_ddp`` payload's rank 0
    report): everything :func:`judge_ddp` judges, and a FAIL for an epoch loss that is not
    finite or a checkpoint that was not written (the task's output); a WARN, said so, when
    the staged data is the sandbox mirror's generated stand-in, whose accuracy bar is not
    CIFAR-10's."""
    judged = judge_ddp(
        result,
        min_accuracy=min_accuracy,
        max_seconds=max_seconds,
        min_speedup=min_speedup,
        speedup_key="smoke.cifar_ddp.min_speedup",
    )
    if not result.get("ranks"):  # nothing trained: judge_ddp said why
        return judged
    verdicts, messages = [judged["verdict"]], list(judged["messages"])
    losses = result.get("epoch_losses") or []
    bad = [i + 1 for i, v in enumerate(losses) if not_finite(v)]
    if not losses or bad:
        verdicts.append(FAIL)
        messages.append(f"epoch loss not finite (epochs {bad or 'none recorded'}): {losses}")
    if not result.get("checkpoint"):
        verdicts.append(FAIL)
        messages.append(
            f"no checkpoint written ({result.get('checkpoint_error') or 'no output dir'}): "
            "check that the training user can write the models directory on BeeGFS"
        )
    if result.get("data_stand_in"):
        verdicts.append(WARN)
        messages.append(
            f"trained on the mirror's {CIFAR_STAND_IN_MARK} (class patterns plus noise), not "
            f"CIFAR-10: accuracy {result.get('accuracy')} is judged by this profile's stand-in "
            f"bar {min_accuracy:g}, MLOPS-2.1's 60 % on CIFAR-10 is untested here"
        )
    return {"verdict": worst(verdicts), "messages": messages}
