"""Searches on a Dask cluster of 2 local worker processes (issue 8)."""

import contextlib
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from leukosk import VGG19LeukocyteClassifier
from leukosk.model_selection import fit_on_dask

distributed = pytest.importorskip("distributed")

#: Worker processes that each import torch: minutes, not seconds.
pytestmark = pytest.mark.slow

#: A candidate takes about a second on one core; the whole search seconds.
PARAMS = dict(weights=None, image_size=32, max_epochs=1, batch_size=6,
              module__hidden_units=16, module__width=0.25, verbose=0,
              random_state=0, device="cpu")
#: Fits of about a second each (on 2 cores): long enough that a worker can be
#: killed in the middle of one (the tests below do), short enough for CI.
GRID = {"lr": [1e-4, 3e-3], "max_epochs": [40, 41]}


def _search(**params):
    return GridSearchCV(VGG19LeukocyteClassifier(**{**PARAMS, **params}), GRID,
                        cv=StratifiedKFold(2))


@contextlib.contextmanager
def _local_cluster():
    """2 worker processes on 127.0.0.1, one thread each (as torch gets)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def cluster():
    with _local_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def serial(tiny_module):
    """The same search run serially here, with one torch thread as a worker."""
    X, y = tiny_module
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _search().fit(X, y)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_module():
    from conftest import make_images

    return make_images(n_per_class=4, size=32)


def _scores(search):
    return search.cv_results_["mean_test_score"], search.cv_results_["params"]


def test_same_results_as_the_serial_search(cluster, serial, tiny_module):
    _, client = cluster
    X, y = tiny_module
    search = fit_on_dask(_search(), X, y, client=client)
    np.testing.assert_array_equal(_scores(search)[0], _scores(serial)[0])
    assert _scores(search)[1] == _scores(serial)[1]
    assert search.best_params_ == serial.best_params_
    # The best model was refitted on a worker and came back usable here.
    np.testing.assert_allclose(search.best_estimator_.predict_proba(X),
                               serial.best_estimator_.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    assert search.refit is True and search.refit_time_ > 0


def test_successive_halving_picks_from_the_last_iteration(cluster, tiny_module):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    _, client = cluster
    X, y = tiny_module

    def halving():
        return HalvingGridSearchCV(
            VGG19LeukocyteClassifier(**PARAMS), {"lr": [1e-4, 1e-3, 1e-2, 1e-1]},
            cv=StratifiedKFold(2), factor=2, min_resources=6, random_state=0)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = halving().fit(X, y)
    finally:
        torch.set_num_threads(threads)
    remote = fit_on_dask(halving(), X, y, client=client)
    last = remote.cv_results_["iter"] == remote.cv_results_["iter"].max()
    assert last[remote.best_index_]
    assert remote.best_index_ == local.best_index_
    assert remote.best_params_ == local.best_params_


def test_image_paths_are_read_on_the_workers(cluster, pbc_folder):
    _, client = cluster
    paths = sorted(str(p) for p in pbc_folder.rglob("*.jpg"))
    y = np.array([p.split(os.sep)[-2] for p in paths])
    search = GridSearchCV(VGG19LeukocyteClassifier(**PARAMS), {"lr": [1e-4, 1e-3]},
                          cv=StratifiedKFold(3), refit=False)
    fit_on_dask(search, paths, y, client=client)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert not hasattr(search, "best_estimator_")


def test_fit_errors_name_the_candidate(cluster, tiny_module):
    _, client = cluster
    X, y = tiny_module
    search = GridSearchCV(VGG19LeukocyteClassifier(**PARAMS),
                          {"image_size": [32, 8]}, cv=StratifiedKFold(2),
                          error_score="raise")
    with pytest.raises(ValueError, match="'image_size' parameter.*Got 8") as info:
        fit_on_dask(search, X, y, client=client)
    notes = getattr(info.value, "__notes__", [])
    if notes:  # Python 3.11+
        assert "candidate 2 of 2, fold" in notes[-1]


def _worker_pids(client):
    return client.run(os.getpid)


def _kill_a_busy_worker(client, timeout=60):
    """SIGKILL the process of a worker that is running a fit; its address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items()
                if any("leukosk-fit" in str(k) for k in keys)]
        if busy:
            pid = _worker_pids(client)[busy[0]]
            time.sleep(0.2)  # let the fit get going
            os.kill(pid, signal.SIGKILL)
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("no worker started a fit")


def _run_in_thread(func):
    """Start func() in a thread: (thread, outcome dict: "result" or "error")."""
    outcome = {}

    def target():
        try:
            outcome["result"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _search_killing_a_worker(client, X, y, timeout=180):
    """Run a search, SIGKILL a busy worker; the outcome within ``timeout`` s."""
    thread, outcome = _run_in_thread(lambda: fit_on_dask(_search(), X, y, client=client))
    _kill_a_busy_worker(client)
    thread.join(timeout)
    assert not thread.is_alive(), "the search hung after a worker died"
    return outcome


def test_a_killed_worker_is_survived(serial, tiny_module):
    X, y = tiny_module
    with _local_cluster() as (_, client):
        outcome = _search_killing_a_worker(client, X, y)
    assert "error" not in outcome, outcome.get("error")
    np.testing.assert_array_equal(_scores(outcome["result"])[0], _scores(serial)[0])


def test_a_worker_dying_every_time_is_reported(tiny_module):
    import dask

    X, y = tiny_module
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            _local_cluster() as (_, client):
        outcome = _search_killing_a_worker(client, X, y)
    error = outcome.get("error")
    assert isinstance(error, RuntimeError), error
    message = str(error)
    assert "Dask workers kept dying while running candidate" in message
    assert "candidate" in message and "fold" in message and "'lr'" in message
