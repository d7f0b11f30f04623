#!/bin/bash
# Device-machine entry for bench/gpu_serve_mnist.py (issue 19 item 5): train MLOPS-1.1 on the
# GPU with the training payload, then serve it with KServe's model server on the GPU and on the
# CPU. Needs kserve's wheels in .whl (carried) and the sandbox mirror's MNIST in .device/mnist.
set -u
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
R=$PWD; E=/tmp/ev; mkdir -p "$E/p" "$E/models"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
cp mlops_assets/payloads/{smoke_common,mnist_train,serve_mnist}.py "$E/p/"
cp mlops_assets/core/smoke_rules.py "$E/p/mlops_smoke_rules.py"
cp mlops_assets/core/parse/nvidia_smi.py "$E/p/mlops_nvidia_smi.py"
{ date -u; nvidia-smi; } > "$OUT/nvidia_smi_serve.txt" 2>&1
python3 -c 'import torch,sys,kserve;print(sys.version);print(torch.__version__, torch.version.cuda, kserve.__version__)' \
  > "$OUT/versions_serve.txt" 2>&1
SLURM_JOB_ID=gpu-serve python3 "$E/p/mnist_train.py" \
  --config mlops_assets_tests/payloads/fixtures/device_config.json \
  --set dataset_dir="$R/.device/mnist" --set models_dir="$E/models" \
  > "$OUT/mnist_train_serve.json" 2> "$OUT/mnist_train_serve.log"
echo "train rc=$?"
python3 bench/gpu_serve_mnist.py "$E/p" "$R/.device/mnist" "$E/models/mnist/job-gpu-serve" \
  > "$OUT/gpu_serve_mnist.json" 2> "$OUT/gpu_serve_mnist.log"
echo "bench rc=$?"
cp /tmp/serve_cuda.log "$OUT/serve_cuda.log" 2>/dev/null
tail -c 1500 "$OUT/gpu_serve_mnist.json"; tail -5 "$OUT/gpu_serve_mnist.log"
