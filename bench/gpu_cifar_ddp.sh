#!/bin/bash
# Device-machine entry (issue 19 item 5): the MLOPS-2.1 payload (cifar_ddp.py, ResNet-18 under
# DDP) as one NCCL rank on the lent GPU, on the sandbox mirror's GENERATED CIFAR-10 stand-in
# (deploy/sandbox/standins/hub_data.py; no real CIFAR-10 can be fetched offline). Figures of
# the GPU path (NCCL init, samples/s, memory), not of CIFAR-10 accuracy.
set -u
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
python3 - <<'PY' || exit 1
import io, os, sys, tarfile
sys.path.insert(0, "deploy/sandbox/standins")
import hub_data
archive, _ = hub_data.cifar_files()
os.makedirs("devrun/cifar10", exist_ok=True)
tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz").extractall("devrun/cifar10", filter="data")
print(sorted(os.listdir("devrun/cifar10/cifar-10-batches-py")))
PY
{ date -u; nvidia-smi; } > "$OUT/nvidia_smi_cifar.txt" 2>&1
for stem in cifar stock; do
  SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_JOB_NODELIST=gpunode1 SLURMD_NODENAME=gpunode1 \
  SLURM_CPUS_PER_TASK=8 SLURM_JOB_ID=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29512 \
  timeout 150 python3 mlops_assets/payloads/cifar_ddp.py --set dataset_dir="\"$PWD/devrun/cifar10\"" \
    --set models_dir="\"/tmp/cifar-models-$stem\"" --set stem="\"$stem\"" --set epochs=3 \
    --set nodes_requested=1 --set nodes_available=1 \
    > "$OUT/cifar_ddp_${stem}_h100.json" 2> "$OUT/cifar_ddp_${stem}_h100.log"
  echo "$stem rc=$?"
  tail -c 1500 "$OUT/cifar_ddp_${stem}_h100.json"
done
