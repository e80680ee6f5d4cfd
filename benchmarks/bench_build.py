"""Time to build a network: LeukocyteVGG vs torchvision's own VGG-19 constructor.

Every ``fit`` from scratch, every ``load_pretrained()``, every ``leukosk``
command that loads a model and every candidate of a grid search builds one
network. leukosk builds it on PyTorch's meta device and initialises it once;
torchvision's constructor makes and initialises its 1000-class head first
(123 million parameters at full width). Baseline in the same run: the plain
construction leukosk used before (torchvision's ``VGG`` with the head then
replaced), for each network shape the docs use. Interleaved, repeated,
medians; the device is the CPU (construction happens there).

    python benchmarks/bench_build.py          # 7 repeats
    python benchmarks/bench_build.py --quick  # CI-sized: 2 repeats
"""

import argparse
import platform
import statistics
import time

import torch
from torch import nn
from _records import detect_machine
from torchvision.models.vgg import VGG, cfgs, make_layers

from leukosk import LeukocyteVGG

#: (name, settings): the paper's network and the shipped models' shapes.
SHAPES = [
    ("paper: width 1, 4096 hidden", dict(width=1.0, hidden_units=4096, pool_size=7)),
    ("V2: width 0.25, 256 hidden", dict(width=0.25, hidden_units=256, pool_size=2)),
    ("V3: width 0.375, 256 hidden", dict(width=0.375, hidden_units=256, pool_size=2)),
]


def torchvision_then_replaced(n_classes, width, hidden_units, pool_size):
    """The baseline: torchvision's constructor, then the head resized."""
    config = [v if v == "M" else max(1, round(v * width)) for v in cfgs["E"]]
    net = VGG(make_layers(config, batch_norm=True))
    net.avgpool = nn.AdaptiveAvgPool2d(pool_size)
    net.classifier[0] = nn.Linear(config[-2] * pool_size**2, hidden_units)
    net.classifier[3] = nn.Linear(hidden_units, hidden_units)
    net.classifier[6] = nn.Linear(hidden_units, n_classes)
    return net


def leukosk_build(n_classes, **settings):
    return LeukocyteVGG(n_classes, batch_norm=True, image_size=64, **settings)


def seconds(build, settings):
    start = time.perf_counter()
    build(8, **settings)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 7
    machine = detect_machine() or f"unlisted {platform.machine()} CPU"
    print(f"device: CPU, machine {machine} (docs/results.rst), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'network':32} {'torchvision+replace':>20} {'leukosk':>9} {'ratio':>7}")
    for name, settings in SHAPES:
        base, ours = [], []
        for _ in range(repeats):  # interleaved
            base.append(seconds(torchvision_then_replaced, settings))
            ours.append(seconds(leukosk_build, settings))
        b, o = statistics.median(base), statistics.median(ours)
        print(f"{name:32} {b:19.3f}s {o:8.3f}s {b / o:6.1f}x")


if __name__ == "__main__":
    main()
