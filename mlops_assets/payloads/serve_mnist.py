"""Serve the MNIST model of MLOPS-1.1 with KServe's own Python model server (v2 protocol).

The training payload (mnist_train.py) writes a raw state_dict as `model.pt`, which KServe's
pytorch runtime cannot serve as is (a known fault of the validation docs). This payload is the
packaging: it rebuilds the SimpleCNN from mnist_train's one definition, loads the state_dict
into it, and answers

    GET  /v2/models/<name>/ready      readiness (KServe's own route)
    POST /v2/models/<name>/infer      one FP32 input, shape [N,1,28,28] or [N,784], pixel
                                      intensities in [0,1]; the training normalization
                                      (mean 0.1307, std 0.3081) is applied here
    GET  /metrics                     Prometheus text: KServe's request_*_seconds histograms,
                                      labelled model_name=<name>

Outputs: `predicted_class` (INT64 [N]) and `probabilities` (FP32 [N,10], softmax).

    python serve_mnist.py MODEL_DIR_OR_FILE [--model_name mnist] [--http_port 8080]
        [--bind 127.0.0.1] [--threads 1] [--device cpu|cuda]

Needs an environment with kserve==0.21.0 and torch (the sandbox's kserve env; see
mlops_assets_tests/payloads/test_serve_mnist.py for how to make one). The artifact is checked
and loaded before kserve is imported, so a missing or malformed file fails in about a second,
with the file named, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mnist_train import MEAN, STD, simple_cnn  # the one SimpleCNN definition

MODEL_FILE = "model.pt"
INPUT_SHAPES = "[N,1,28,28] or [N,784]"
EXIT_BAD_ARTIFACT = 2
EXIT_NO_DEVICE = 3  # --device names a GPU this machine does not have


class ArtifactError(Exception):
    """The model artifact is missing or is not a SimpleCNN state_dict; the message names it."""


def artifact_path(path: str) -> str:
    """The state_dict file: `path` itself, or `path/model.pt` where it is a directory."""
    target = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(target):
        where = f"{path} holds no {MODEL_FILE}" if os.path.isdir(path) else f"{path} not found"
        raise ArtifactError(f"model artifact missing: {where} (train it first: mnist_train.py)")
    return target


def load_network(torch: Any, path: str) -> Any:
    """A SimpleCNN in eval mode with the state_dict at `path`. weights_only: the file comes
    from a registry, so unpickling it must not run code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same error to a user
        raise ArtifactError(f"{path}: not a readable torch state_dict ({exc})") from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ArtifactError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    net = simple_cnn(torch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ArtifactError(f"{path}: not a SimpleCNN state_dict ({first})") from None
    return net.eval()


def _model_class(kserve: Any, torch: Any) -> Any:
    """The kserve.Model subclass, built once kserve is importable (it is not in every env)."""
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class MnistModel(kserve.Model):
        """SimpleCNN behind KServe's dataplane: v2 in, class and probabilities out."""

        def __init__(self, name: str, net: Any) -> None:
            super().__init__(name)
            self.net = net
            self.device = next(net.parameters()).device
            self.ready = True  # loaded before construction: nothing left to do in load()

        def load(self) -> bool:
            return bool(self.ready)

        def predict(
            self,
            payload: InferRequest,
            headers: dict[str, str] | None = None,
            response_headers: dict[str, str] | None = None,
        ) -> InferResponse:
            if not isinstance(payload, InferRequest):
                raise InvalidInput("this model speaks the v2 protocol: POST /v2/models/../infer")
            if len(payload.inputs) != 1:
                raise InvalidInput(f"expected 1 input, got {len(payload.inputs)}")
            tensor = payload.inputs[0]
            if tensor.datatype != "FP32":
                raise InvalidInput(f"input {tensor.name}: datatype {tensor.datatype}, not FP32")
            shape = list(tensor.shape)
            if not (shape[1:] == [784] or shape[1:] == [1, 28, 28]) or len(shape) < 2:
                raise InvalidInput(f"input {tensor.name}: shape {shape}, not {INPUT_SHAPES}")
            try:
                arr = tensor.as_numpy()
            except ValueError as exc:
                raise InvalidInput(
                    f"input {tensor.name}: data does not fit {shape} ({exc})"
                ) from None
            x = (torch.from_numpy(arr.reshape(-1, 1, 28, 28).copy()) - MEAN) / STD
            with torch.no_grad():
                probs = torch.softmax(self.net(x.to(self.device)), dim=1).cpu()
            n = int(probs.shape[0])
            outputs = [
                InferOutput("predicted_class", [n], "INT64", probs.argmax(1).tolist()),
                InferOutput("probabilities", [n, 10], "FP32", probs.reshape(-1).tolist()),
            ]
            return InferResponse(
                response_id=payload.id or "", model_name=self.name, infer_outputs=outputs
            )

    return MnistModel


def serve(net: Any, torch: Any, name: str, port: int, bind: str) -> None:
    """Run KServe's ModelServer (REST only, one worker) until SIGTERM/SIGINT."""
    import kserve
    from kserve import model_server

    class BoundRESTServer(model_server.RESTServer):
        """kserve 0.21 binds its REST server to 0.0.0.0 with no option: bind where asked."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = bind

    model_server.RESTServer = BoundRESTServer
    model = _model_class(kserve, torch)(name, net)
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1)
    server.start([model])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("model", help=f"the training output directory (holding {MODEL_FILE}) or file")
    p.add_argument("--model_name", default="mnist", help="the name in /v2/models/<name>")
    p.add_argument("--http_port", type=int, default=8080)
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, or cuda to serve on the GPU")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        path = artifact_path(args.model)
        import torch

        torch.set_num_threads(max(1, args.threads))
        net = load_network(torch, path)
    except ArtifactError as exc:
        print(f"serve_mnist: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_ARTIFACT
    if args.device != "cpu":
        if not args.device.startswith("cuda") or not torch.cuda.is_available():
            print(
                f"serve_mnist: --device {args.device}: no CUDA device here (use --device cpu)",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_NO_DEVICE
        net = net.to(args.device)
    print(
        f"serve_mnist: loaded {path} on {args.device}; serving {args.model_name!r} on "
        f"http://{args.bind}:{args.http_port}",
        file=sys.stderr,
        flush=True,
    )
    # kserve parses sys.argv when imported: hand it none of ours, everything goes as arguments
    sys.argv = sys.argv[:1]
    serve(net, torch, args.model_name, args.http_port, args.bind)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
