"""The Torch-Pruning peer of ``python -m experiments.benchmarks.pruning --torch-python PY``.

Run by that benchmark with the benchmark environment's interpreter (torch and torch-pruning are
never memjax dependencies): CIFAR ResNet-56 with option-A shortcuts, magnitude (L1) pruning at
``ratio`` by ``torch_pruning.pruner.MagnitudePruner``, MACs and parameters by
``tp.utils.count_ops_and_params``, and the median latency at batch 1 and 64 before and after.
Prints one JSON line. Usage: ``python pruning_torch_peer.py RATIO REPEATS``.
"""

import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down, self.pad = stride != 1 or cin != cout, (cout - cin) // 2

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.down:  # option A: subsample, zero-pad the channels
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + x)


class ResNet56(nn.Module):
    def __init__(self, n=9):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for i, w in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(Block(cin, w, 2 if b == 0 and i > 0 else 1))
                cin = w
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.layers(F.relu(self.bn(self.conv(x)))).mean((2, 3)))


def latency(model, b, repeats):
    x = torch.randn(b, 3, 32, 32)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def run(ratio: float, repeats: int) -> dict:
    torch.manual_seed(0)
    model = ResNet56().eval()
    example = torch.randn(1, 3, 32, 32)
    macs, params = tp.utils.count_ops_and_params(model, example)
    out = {
        "threads": torch.get_num_threads(),
        "dense": {
            "macs": macs,
            "params": params,
            "ms b=1": latency(model, 1, repeats),
            "ms b=64": latency(model, 64, repeats),
        },
    }
    t = time.perf_counter()
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[model.fc],
    )
    pruner.step()
    prune_s = time.perf_counter() - t
    macs, params = tp.utils.count_ops_and_params(model, example)
    out["pruned"] = {
        "macs": macs,
        "params": params,
        "ms b=1": latency(model, 1, repeats),
        "ms b=64": latency(model, 64, repeats),
        "prune_s": prune_s,
    }
    return out


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]), int(sys.argv[2]))))
