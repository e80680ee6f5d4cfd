"""A grid search on a local Dask cluster of 2 worker processes vs serially.

The same GridSearchCV (4 candidates x 2 folds of VGG19LeukocyteClassifier
fits; with --refit, plus the refit of the best) runs once serially in this process with all cores
to torch, and once through :func:`leukosk.model_selection.fit_on_dask` on a
``LocalCluster`` of 2 worker processes with 1 thread each. Prints both wall
times (the cluster's start excluded, its data transfer included) and the
speed-up, and checks that both found the same scores.

    python benchmarks/bench_dask_search.py            # full
    python benchmarks/bench_dask_search.py --quick    # CI-sized
"""

import argparse
import time

import numpy as np
from _common import pick_device
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from leukosk import VGG19LeukocyteClassifier
from leukosk.model_selection import fit_on_dask


def make_search(args):
    clf = VGG19LeukocyteClassifier(
        weights=None, image_size=args.image_size, batch_size=16,
        module__hidden_units=64, max_epochs=1, verbose=0, random_state=0,
        device="cpu")
    grid = {"lr": [1e-4, 1e-3], "max_epochs": [1, 2]}
    return GridSearchCV(clf, grid, cv=StratifiedKFold(2), refit=args.refit)


def main(argv=None):
    import distributed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refit", action="store_true",
                        help="include refitting the best candidate (on a worker)")
    args = parser.parse_args(argv)
    args.image_size = 32
    n = 32 if args.quick else 160
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
    y = np.array([f"class{i % 4}" for i in range(n)])

    start = time.perf_counter()
    serial = make_search(args).fit(X, y)
    serial_s = time.perf_counter() - start

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        client.run(lambda: __import__("leukosk.classifier._classifier"))  # warm imports
        start = time.perf_counter()
        on_dask = fit_on_dask(make_search(args), X, y, client=client)
        dask_s = time.perf_counter() - start
    same = np.allclose(serial.cv_results_["mean_test_score"],
                       on_dask.cv_results_["mean_test_score"])
    print(f"device: {pick_device('cpu')[1]}")
    print(f"setup: {n} images, 4 candidates x 2 folds{' + refit' if args.refit else ''}, "
          f"{args.image_size}px; cluster: {args.workers} worker processes x 1 thread")
    print(f"serial search:                 {serial_s:7.1f} s")
    print(f"fit_on_dask, {args.workers} local workers:   {dask_s:7.1f} s")
    print(f"speed-up:                      {serial_s / dask_s:7.2f}x "
          f"(same scores: {same})")
    return serial_s / dask_s


if __name__ == "__main__":
    main()
