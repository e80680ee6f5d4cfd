"""Hyperparameter searches on a Dask cluster, through joblib's Dask backend.

scikit-learn's searches run their fits with joblib; joblib's ``"dask"``
backend sends each fit to a ``dask.distributed`` worker. :func:`fit_on_dask`
adds what a search over deep-learning fits needs on top: the data are sent to
the workers once, each fit can claim a GPU (a worker resource), tasks are
named after their candidate and fold (so errors and the dashboard say which
one failed), lost workers are retried by Dask, and the best model is refitted
on a worker and returned to the client in a form that loads on a CPU.
"""

import time
import uuid

from sklearn.base import clone

__all__ = ["fit_on_dask"]


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "fit_on_dask needs dask.distributed: pip install 'leukosk[distributed]' "
            "(or pip install 'dask[distributed]').") from exc
    return distributed


def _describe(kwargs):
    """'candidate 3 of 12, fold 2 of 5' from sklearn's _fit_and_score kwargs."""
    parts = []
    for what, key in (("candidate", "candidate_progress"), ("fold", "split_progress")):
        progress = kwargs.get(key)
        if progress is not None:
            parts.append(f"{what} {progress[0] + 1} of {progress[1]}")
    return ", ".join(parts) or "a fit"


class _NamedBatch:
    """A joblib Dask batch whose task key and errors name its fits."""

    def __init__(self, batch, name, description):
        self.batch = batch
        self.name = name
        self.description = description

    def __call__(self, tasks=None):
        try:
            return self.batch(tasks)
        except Exception as exc:
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"leukosk: raised while fitting {self.description}")
            raise

    def __repr__(self):  # joblib makes the task key from it
        return self.name


def _backend(**kwargs):
    """joblib's Dask backend, with each task named after its candidate and fold.

    It extends two methods of joblib's backend (which lives in the private
    ``joblib._dask``) and reuses its scattered data for the refit; the tests
    exercise all three, so a change in joblib shows.
    """
    from joblib._dask import DaskDistributedBackend

    class NamedTaskDaskBackend(DaskDistributedBackend):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fits = {}  # task-key prefix -> (description, parameters)

        async def _to_func_args(self, func):
            batch, tasks = await super()._to_func_args(func)
            descriptions = [_describe(kwargs) for _, _, kwargs in tasks]
            description = "; ".join(descriptions)
            words = description.replace(",", "").replace(";", "").split()
            name = "leukosk-fit-" + "-".join(words)
            self.fits[name] = (description, [kw.get("parameters") for _, _, kw in tasks])
            return _NamedBatch(batch, name, description), tasks

        def submit(self, func, callback=None):
            # joblib reports a task's outcome to Parallel through ``callback``
            # but calls it only on success; a task that fails in Dask itself
            # (its worker died) would leave Parallel waiting forever.
            future = super().submit(func, callback)
            if callback is not None:
                future.add_done_callback(lambda done: _report_failure(done, callback))
            return future

    return NamedTaskDaskBackend(**kwargs)


def _report_failure(future, callback):
    exc = future.exception()
    if exc is not None:
        callback(exc)  # joblib re-raises it as the task's outcome


def _explain_lost_worker(exc, backend):
    """A RuntimeError naming the fit(s) whose worker kept dying."""
    key = str(getattr(exc, "task", None) or (exc.args[0] if exc.args else ""))
    which = "a fit"
    for name, (description, parameters) in backend.fits.items():
        if key.startswith(name + "-"):
            which = f"{description} (parameters {', '.join(map(str, parameters))})"
    return RuntimeError(
        f"Dask workers kept dying while running {which}; Dask gave up after "
        "distributed.scheduler.allowed-failures deaths "
        f"({type(exc).__name__}: {exc}). Typical causes: running out of memory "
        "(GPU or host) or a crash in native code; check the worker logs, lower "
        "batch_size, or give the workers more memory.")


def _timed_fit(estimator, X, y, fit_params):
    start = time.perf_counter()
    estimator.fit(X, y, **fit_params)
    return estimator, time.perf_counter() - start


def fit_on_dask(search, X, y=None, *, client=None, resources=None,
                refit_on_workers=True, **fit_params):
    """Fit a scikit-learn search (``GridSearchCV``, ...) on a Dask cluster.

    The search's fits (one per candidate and fold) run as tasks on the
    workers of ``client``'s cluster, through joblib's Dask backend: the
    results equal those of ``search.fit(X, y)`` run locally with the same
    ``random_state``.

    Parameters
    ----------
    search : BaseSearchCV
        E.g. ``GridSearchCV(VGG19LeukocyteClassifier(...), param_grid)``.
        Its ``n_jobs`` is ignored: the cluster's workers set the parallelism.
    X : ndarray of shape (n, H, W, 3) or list of image paths
        Sent to the workers once (scattered), not with every task. Paths must
        be readable on the workers (shared storage).
    y : array-like of shape (n,)
    client : distributed.Client, default=None
        The cluster's client; by default the current one
        (``distributed.get_client()``).
    resources : dict, default=None
        Worker resources each fit claims, e.g. ``{"GPU": 1}`` with workers
        started as ``dask worker ... --resources GPU=1`` and one
        ``CUDA_VISIBLE_DEVICES`` GPU each, so every fit gets a GPU of its
        own.
    refit_on_workers : bool, default=True
        With the search's ``refit``: refit the best candidate on a worker
        (with ``resources``) rather than on the client, and bring the fitted
        model back; it loads on a machine without GPU (``device="auto"``
        resolves to the CPU there).
    **fit_params
        Passed to ``search.fit``.

    Returns
    -------
    search
        Fitted, as after ``search.fit(X, y)``.

    Raises
    ------
    RuntimeError
        Workers kept dying while running one fit: the scheduler moves the fit
        of a dead worker to another one, and gives up after
        ``distributed.scheduler.allowed-failures`` deaths (Dask's default is
        3). The message names the candidate, fold and parameters. Exceptions
        raised by a fit itself (with ``error_score="raise"``) keep their type
        and carry a note naming the candidate and fold.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from sklearn.model_selection import GridSearchCV
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.model_selection import fit_on_dask
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    >>> y = np.array(["basophil", "platelet"] * 6)
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     module__width=0.25, module__hidden_units=16, verbose=0, random_state=0,
    ...     device="cpu")
    >>> search = GridSearchCV(clf, {"lr": [1e-4, 1e-3]}, cv=2)
    >>> with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
    ...                   dashboard_address=":0") as cluster, Client(cluster) as client:
    ...     fit_on_dask(search, X, y, client=client).best_estimator_.classes_
    array(['basophil', 'platelet'], dtype='<U8')
    """
    import joblib

    distributed = _distributed()
    client = client if client is not None else distributed.get_client()
    submit = {}
    if resources:
        submit["resources"] = dict(resources)
    refit = search.refit
    on_workers = bool(refit) and refit_on_workers
    data = [X] if y is None else [X, y]
    if on_workers:
        search.refit = False
    backend = _backend(client=client, scatter=data, **submit)
    try:
        with joblib.parallel_config(backend=backend, n_jobs=-1):
            search.fit(X, y, **fit_params)
    except distributed.KilledWorker as exc:
        raise _explain_lost_worker(exc, backend) from exc
    finally:
        search.refit = refit
    if on_workers:
        # The data the search scattered to the workers serve the refit too.
        scattered = getattr(backend, "data_futures", {})  # joblib: id -> future
        X_future, y_future = (scattered.get(id(v), v) for v in (X, y))
        _refit_on_worker(search, client, X_future, y_future, fit_params, submit)
    return search


def _refit_on_worker(search, client, X, y, fit_params, submit):
    """The refit step of ``search.fit``, run as one task on a worker.

    Selects the best candidate with the search's own rule
    (``_select_best_index``: a ``refit`` callable, a metric name, the single
    score, or, for successive halving, the last iteration's best), then fits
    it on a worker.
    """
    refit, results = search.refit, search.cv_results_
    metric = refit if isinstance(refit, str) else "score"
    best = int(search._select_best_index(refit, metric, results))
    search.best_index_ = best
    search.best_params_ = results["params"][best]
    if not callable(refit):
        search.best_score_ = results[f"mean_test_{metric}"][best]
    estimator = clone(search.estimator).set_params(
        **clone(search.best_params_, safe=False))
    future = client.submit(_timed_fit, estimator, X, y, fit_params,
                           key=f"leukosk-refit-candidate-{best + 1}-{uuid.uuid4().hex}",
                           **submit)
    search.best_estimator_, search.refit_time_ = future.result()
