#!/usr/bin/env python3
"""torch_baseline.py - PyTorch float of the transformers `make bench` runs
privately (issue 13: the ViT's online phase at batch 1 within 50x of
PyTorch float of the same run): the ViT and BERT-tiny (sequences 16 and 128)
of models/train.py, built with its classes (random weights: only the time
counts, the shapes and operators are the exported models'), at batch 1 on
one thread (as each party gets on a 2-core machine), in eval mode without
autograd. Prints one JSON object per model: the median of 50 forward passes
after 20 warm-ups, in seconds.

Usage: torch_baseline.py MODELS_DIR
"""
import importlib.util
import json
import os
import sys
import time


def main():
    models = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                                "models")
    try:
        import torch
    except ImportError:
        print(json.dumps({"workload": "pytorch", "error": "python3-torch is not installed"}))
        return
    spec = importlib.util.spec_from_file_location("train", os.path.join(models, "train.py"))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = [("fashion_vit.onnx", train.ViT(), torch.randn(1, 1, 28, 28)),
             ("bert_tiny16.onnx", train.BertTiny(seq=16), torch.randint(0, 1024, (1, 16))),
             ("bert_tiny.onnx", train.BertTiny(seq=128), torch.randint(0, 1024, (1, 128)))]
    for name, model, x in cases:
        model.eval()
        with torch.no_grad():
            for _ in range(20):
                model(x)
            ts = []
            for _ in range(50):
                t0 = time.perf_counter()
                model(x)
                ts.append(time.perf_counter() - t0)
        ts.sort()
        print(json.dumps({"workload": "pytorch", "model": name, "batch": 1, "threads": 1,
                          "torch": torch.__version__, "float_s": ts[len(ts) // 2]}))


if __name__ == "__main__":
    main()
