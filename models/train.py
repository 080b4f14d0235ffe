#!/usr/bin/python3
"""Trains and exports Tandem's demo and test models (run with Debian's python3-torch).

Not needed to build, test or run Tandem: its outputs are committed beside it.
    /usr/bin/python3 models/train.py [--out models] [--epochs-mlp 30] [--epochs-cnn 15]
                                     [--epochs-vit 12] [--threads 1]
                                     [--nets mlp,cnn,variant,gap,blocks,vit,bert]

Writes
  fashion_mlp.onnx   784-128-128-10 with ReLU (Gemm nodes), opset 13, dynamic batch
  fashion_cnn.onnx   Conv(1->16,3x3,pad 1)-ReLU-MaxPool2 - Conv(16->32,3x3,pad 1)-ReLU-
                     MaxPool2 - Flatten - Gemm(1568->10), opset 13, dynamic batch
  fashion_test16.npy the first 16 test images, float32 [16,1,28,28] in [0,1]
  fashion_{mlp,cnn}_logits16.npy  PyTorch's logits for them (the evaluator's test)
  variants/*.onnx    exports with other options (opsets 9/13/17, constant folding
                     on/off) and two extra networks: "variant" (Pad before Conv,
                     Conv+BatchNorm (PyTorch folds it on export), AveragePool over
                     a zero border as Pad+AveragePool (count_include_pad), strided
                     Conv, Gemm+BatchNorm) and "gap" (BatchNorm after a ReLU, so no
                     layer to fold it into; AveragePool with pads and
                     count_include_pad=0; GlobalAveragePool); each network's
                     logits in variants/<net>_logits16.npy (for mlp and cnn a
                     copy of fashion_<net>_logits16.npy: every model's logits are
                     <dir>/<name up to _opset or .onnx>_logits16.npy)
  variants/{resnet,separable,inception}_opset13.onnx  torchvision-style blocks
                     (--nets blocks): residual blocks with BatchNorm and a 1x1
                     strided shortcut; MobileNet-style depthwise-separable blocks
                     with ReLU6; an Inception-style module of four branches
                     joined by Concat; trained 2 epochs on 10,000 images
  transformers/      (the transformer issue's models, in a directory of their own
                     until Tandem imports them: the models suite imports every
                     model in models/ and variants/)
  transformers/fashion_vit.onnx  a small Vision Transformer (7x7 patches by a strided Conv, a
                     class token, dim 64, 2 pre-norm encoder layers of 4 heads,
                     MLP 128 with exact GELU, LayerNorm, a linear head), opset 17,
                     dynamic batch, as PyTorch exports it (Shape arithmetic,
                     LayerNormalization, Softmax, Erf); fashion_vit_logits16.npy
  transformers/bert_tiny.onnx  a BERT-tiny-shaped encoder with random weights for the
                     benchmark (input_ids [batch, 128] -> token Gather, 2 layers
                     of hidden 128, 2 heads, intermediate 512, tanh GELU, a
                     pooled 2-class head), opset 17; bert_tiny_ids.npy and
                     bert_tiny_logits.npy (one sequence and its logits)
  transformers/bert_tiny16.onnx  the same at sequence 16 (own seed), the test-size
                     variant the private tests run; bert_tiny16_ids.npy (2
                     sequences) and bert_tiny16_logits.npy
and prints the test accuracy of the models (targets: MLP >= 0.88, CNN >= 0.90,
ViT >= 0.85). The ViT and BERT are made last with seeds of their own, so the
other files are the same bit for bit with or without them; a subset (--nets)
reproduces the ViT and BERT files, the others only in a full run.
Training: Adam with a one-cycle cosine learning-rate schedule, batch 128, fixed
seeds, one thread (deterministic); the whole run takes about 4 minutes on one core.
Last run (recorded in README.md): MLP 0.8958, CNN 0.9159, variant 0.8993, gap 0.7395.
Data: the Fashion-MNIST IDX files of Debian's dataset-fashion-mnist.
"""
import argparse
import gzip
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def load_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def dataset(split):
    prefix = "train" if split == "train" else "t10k"
    x = load_idx(f"{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = load_idx(f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Variant(nn.Module):
    """Exercises BatchNorm (after Conv and after Linear), Pad, AveragePool with
    count_include_pad, a strided Conv."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2)
        self.fc = nn.Linear(8 * 7 * 7, 32)
        self.bn2 = nn.BatchNorm1d(32)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        x = F.pad(x, (1, 1, 1, 1))
        x = F.relu(self.bn1(self.c1(x)))
        # 28 -> 14; the border windows count the zero padding (count_include_pad).
        x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=True)
        x = F.relu(self.c2(F.pad(x, (1, 1, 1, 1))))  # 14 -> 7 (stride 2)
        x = torch.flatten(x, 1)
        return self.out(F.relu(self.bn2(self.fc(x))))


class Gap(nn.Module):
    """Exercises GlobalAveragePool, AveragePool with pads but without
    count_include_pad, and a BatchNorm that follows a ReLU (no layer to fold it
    into)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        # 28 -> 14; AveragePool with pads and count_include_pad=0 (border
        # windows average over their real pixels only).
        x = F.avg_pool2d(self.bn1(F.relu(self.c1(x))), 3, stride=2, padding=1,
                         count_include_pad=False)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)             # 14 -> 7
        x = F.adaptive_avg_pool2d(x, 1)                     # GlobalAveragePool
        return self.fc(torch.flatten(x, 1))


class ResNet(nn.Module):
    """A torchvision-style residual network in small: a stem Conv-BN-ReLU, a
    basic block (Conv-BN-ReLU-Conv-BN plus the identity, then ReLU), a
    downsampling block whose shortcut is a strided 1x1 Conv-BN, a BatchNorm
    after the last residual sum (no Conv to fold it into), GlobalAveragePool
    and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())                # 28 -> 14
        self.a1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                nn.BatchNorm2d(8))
        self.b1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU(),
                                nn.Conv2d(16, 16, 3, padding=1, bias=False),
                                nn.BatchNorm2d(16))                           # 14 -> 7
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.a1(x))
        x = F.relu(self.bn(self.b1(x) + self.down(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Separable(nn.Module):
    """MobileNet-style depthwise-separable blocks: a depthwise 3x3 Conv (group =
    channels) with BatchNorm and ReLU6 (Clip 0..6), then a pointwise 1x1 Conv
    with BatchNorm and ReLU6; one block strided; GlobalAveragePool."""

    def __init__(self):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
                nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU6())              # 28 -> 14
        self.b1 = block(8, 16, 2)                                             # 14 -> 7
        self.b2 = block(16, 24, 1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Inception(nn.Module):
    """An Inception-style module: four branches (1x1; 1x1 then 3x3; 1x1 then
    two 3x3; 3x3 max pool, stride 1, then 1x1) joined by Concat along the
    channels, then a max pool and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)                  # 28 -> 14
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1),
                                nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.b4 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x),
                       self.b4(F.max_pool2d(x, 3, stride=1, padding=1))], 1)
        return self.fc(torch.flatten(F.max_pool2d(F.relu(y), 2), 1))


class Encoder(nn.Module):
    """One pre-norm transformer encoder layer, written out as PyTorch exports it
    from user code: LayerNormalization, multi-head self-attention (the heads
    split by Reshape/Transpose from the tensor's own shape, so the export holds
    the Shape/Gather/Concat arithmetic an exporter emits), Softmax, a residual,
    LayerNormalization, an MLP with GELU (exact: Erf, or the tanh form)."""

    def __init__(self, dim, heads, hidden, gelu="none"):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.gelu = gelu

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q = q.reshape(b, t, h, d // h).transpose(1, 2)
        k = k.reshape(b, t, h, d // h).transpose(1, 2)
        v = v.reshape(b, t, h, d // h).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate=self.gelu))


class ViT(nn.Module):
    """A small Vision Transformer for 28x28 images: 7x7 patches (a strided Conv,
    16 tokens) and a class token, dim 64, 2 encoder layers of 4 heads, MLP 128
    with exact GELU, a final LayerNorm and a linear head on the class token."""

    def __init__(self, dim=64, depth=2, heads=4, hidden=128):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 7, stride=7)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.layers = nn.ModuleList(Encoder(dim, heads, hidden) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)           # [b, 16, dim]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x)[:, 0])


class BertTiny(nn.Module):
    """A BERT-tiny-shaped encoder with random weights, for the benchmark: token
    and position embeddings (Gather by input_ids), LayerNorm, 2 layers of hidden
    128, 2 heads, intermediate 512 with GELU (tanh form, as BERT's exporters
    often write it), sequence 128, and a pooled classifier of 2 classes."""

    def __init__(self, vocab=1024, seq=128, dim=128, depth=2, heads=2, hidden=512):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, seq, dim) * 0.02)
        self.ln = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(Encoder(dim, heads, hidden, gelu="tanh")
                                    for _ in range(depth))
        self.pool = nn.Linear(dim, dim)
        self.cls = nn.Linear(dim, 2)

    def forward(self, ids):
        x = self.ln(self.tok(ids) + self.pos)
        for layer in self.layers:
            x = layer(x)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


def export_bert(tdir, name, seq, rows, seed):
    """BertTiny of sequence seq (random weights from seed) to tdir/name.onnx, with
    rows sequences of ids (name_ids.npy, int64) and PyTorch's logits for them
    (name_logits.npy). bert_tiny (seq 128) is the benchmark's; bert_tiny16 (seq
    16, 2 sequences) the test-size variant the private tests run."""
    torch.manual_seed(seed)
    bert = BertTiny(seq=seq).eval()
    ids = torch.randint(0, 1024, (rows, seq))
    path = os.path.join(tdir, name + ".onnx")
    torch.onnx.export(bert, ids, path, opset_version=17, do_constant_folding=True,
                      input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch"}, "logits": {0: "batch"}})
    np.save(os.path.join(tdir, name + "_ids.npy"), ids.numpy())
    with torch.no_grad():
        np.save(os.path.join(tdir, name + "_logits.npy"), bert(ids).numpy().astype(np.float32))
    print(f"{name}: exported (random weights, sequence {seq})", flush=True)


def train(model, xs, ys, epochs, lr, name):
    """Adam, batch 128, one-cycle schedule per step: the learning rate warms up
    to lr over the first 10% of the steps, then decays to ~0 along a cosine."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = xs.shape[0]
    steps = epochs * ((n + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1, anneal_strategy="cos")
    for epoch in range(epochs):
        t0 = time.time()
        model.train()
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = F.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.shape[0]
        print(f"{name}: epoch {epoch + 1}/{epochs} loss {total / n:.4f} "
              f"({time.time() - t0:.1f} s)", flush=True)
    model.eval()


def accuracy(model, xs, ys):
    with torch.no_grad():
        pred = torch.cat([model(xs[i:i + 1000]).argmax(1) for i in range(0, xs.shape[0], 1000)])
    return (pred == ys).float().mean().item()


def pad_symbolic(g, x, pad, mode, value):
    """aten::pad (F.pad) with the pads as one constant (opsets 11 and later).

    PyTorch 1.13 exports F.pad at opset >= 11 as a subgraph that computes the
    pads at run time (Shape, ConstantOfShape, Concat, Slice, Transpose, Cast),
    which constant folding does not remove and Tandem's importer does not
    evaluate; this writes the single Pad node onnx-simplifier would leave."""
    from torch.onnx import symbolic_helper as sh
    if sh._parse_arg(mode, "s") != "constant":
        raise RuntimeError("pad_symbolic: only constant padding")
    pad = sh._get_const(pad, "is", "pad")
    rank = sh._get_tensor_rank(x)
    if rank is None or len(pad) % 2 != 0 or len(pad) > 2 * rank:
        raise RuntimeError("pad_symbolic: static rank and an even pad list needed")
    begin, end = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):          # pad lists the last axis first
        begin[rank - 1 - i] = pad[2 * i]
        end[rank - 1 - i] = pad[2 * i + 1]
    pads = g.op("Constant", value_t=torch.tensor(begin + end, dtype=torch.int64))
    if not sh._is_none(value) and sh._get_const(value, "f", "value") != 0.0:
        raise RuntimeError("pad_symbolic: only zero padding")
    return g.op("Pad", x, pads, mode_s="constant")


def add_metadata(path, key, value):
    """Appends one metadata_props entry (ModelProto field 14) to an ONNX file:
    a protobuf message may carry its fields in any order, so appending the
    encoded field is a valid edit, with no onnx package needed."""
    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(num, data):
        return varint(num << 3 | 2) + varint(len(data)) + data

    entry = field(1, key.encode()) + field(2, value.encode())
    with open(path, "ab") as f:
        f.write(field(14, entry))


def export(model, path, opset, fold=True):
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=opset, do_constant_folding=fold,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    # Pixels are in [0, 1]: Tandem sizes every comparison gate for that range
    # (|x| <= 1, and x >= 0: the sign of the first layer's terms is known).
    add_metadata(path, "tandem.input_bound", "1")
    add_metadata(path, "tandem.input_min", "0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--epochs-mlp", type=int, default=30)
    ap.add_argument("--epochs-cnn", type=int, default=15)
    ap.add_argument("--epochs-variant", type=int, default=3)
    ap.add_argument("--epochs-vit", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nets", default="mlp,cnn,variant,gap,blocks,vit,bert",
                    help="comma-separated subset of mlp,cnn,variant,gap,blocks,vit,bert "
                         "(mlp and cnn go together)")
    args = ap.parse_args()
    nets = set(args.nets.split(","))
    torch.manual_seed(20261125)
    np.random.seed(20261125)
    torch.set_num_threads(args.threads)
    torch.onnx.register_custom_op_symbolic("aten::pad", pad_symbolic, 11)
    xtr, ytr = dataset("train")
    xte, yte = dataset("test")
    os.makedirs(os.path.join(args.out, "variants"), exist_ok=True)
    x16 = xte[:16]
    np.save(os.path.join(args.out, "fashion_test16.npy"), x16.numpy().astype(np.float32))

    results = {}
    first = (("mlp", MLP(), args.epochs_mlp, 2e-3), ("cnn", CNN(), args.epochs_cnn, 3e-3))
    for name, model, epochs, lr in first if "mlp" in nets else ():
        train(model, xtr, ytr, epochs, lr, name)
        acc = accuracy(model, xte, yte)
        results[name] = acc
        export(model, os.path.join(args.out, f"fashion_{name}.onnx"), 13)
        with torch.no_grad():
            logits = model(x16).numpy().astype(np.float32)
        np.save(os.path.join(args.out, f"fashion_{name}_logits16.npy"), logits)
        np.save(os.path.join(args.out, "variants", f"{name}_logits16.npy"), logits)
        for opset, fold in ((9, True), (17, True), (13, False)):
            tag = f"{name}_opset{opset}" + ("" if fold else "_nofold")
            export(model, os.path.join(args.out, "variants", tag + ".onnx"), opset, fold)
        print(f"{name}: test accuracy {acc:.4f}", flush=True)

    extra = (("variant", Variant(), ((9, True), (13, False), (17, True))),
             ("gap", Gap(), ((9, True), (13, True), (17, False))))
    for name, model, exports in extra if "variant" in nets else ():
        train(model, xtr, ytr, args.epochs_variant, 3e-3, name)
        for opset, fold in exports:
            tag = f"{name}_opset{opset}" + ("" if fold else "_nofold")
            export(model, os.path.join(args.out, "variants", tag + ".onnx"), opset, fold)
        with torch.no_grad():
            np.save(os.path.join(args.out, "variants", f"{name}_logits16.npy"),
                    model(x16).numpy().astype(np.float32))
        print(f"{name}: test accuracy {accuracy(model, xte, yte):.4f}", flush=True)
    ok = "mlp" not in results or (results["mlp"] >= 0.88 and results["cnn"] >= 0.90)

    # The torchvision-style building blocks, each with seeds of its own so that
    # they reproduce alone (--nets blocks) and leave the files above unchanged:
    # trained two epochs on the first 10,000 training images (what is tested
    # is the import and the private run against PyTorch's logits, not accuracy).
    blocks = (("resnet", ResNet), ("separable", Separable), ("inception", Inception))
    for k, (name, make) in enumerate(blocks if "blocks" in nets else ()):
        torch.manual_seed(20261209 + k)
        model = make()
        train(model, xtr[:10000], ytr[:10000], 2, 3e-3, name)
        export(model, os.path.join(args.out, "variants", f"{name}_opset13.onnx"), 13)
        with torch.no_grad():
            np.save(os.path.join(args.out, "variants", f"{name}_logits16.npy"),
                    model(x16).numpy().astype(np.float32))
        print(f"{name}: test accuracy {accuracy(model, xte, yte):.4f}", flush=True)

    tdir = os.path.join(args.out, "transformers")
    os.makedirs(tdir, exist_ok=True)
    if "vit" in nets:
        # Trained after the others, so their files stay bit for bit the same.
        torch.manual_seed(20261207)
        vit = ViT()
        train(vit, xtr, ytr, args.epochs_vit, 2e-3, "vit")
        acc = accuracy(vit, xte, yte)
        export(vit, os.path.join(tdir, "fashion_vit.onnx"), 17)
        with torch.no_grad():
            np.save(os.path.join(tdir, "fashion_vit_logits16.npy"),
                    vit(x16).numpy().astype(np.float32))
        print(f"vit: test accuracy {acc:.4f}", flush=True)
        ok = ok and acc >= 0.85
    if "bert" in nets:
        export_bert(tdir, "bert_tiny", seq=128, rows=1, seed=20261208)
        export_bert(tdir, "bert_tiny16", seq=16, rows=2, seed=20261209)
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
