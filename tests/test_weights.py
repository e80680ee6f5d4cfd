"""Weights resolution: hub cache, offline errors, local files (leukosk/weights/_imagenet.py)."""

import os
import pickle
import time
from urllib.error import URLError

import pytest
import torch
from torchvision.models import VGG19_BN_Weights, VGG19_Weights, vgg19

from leukosk import VGG19LeukocyteClassifier, WeightsUnavailableError
from leukosk.nn._vgg import LeukocyteVGG
from leukosk.weights._imagenet import resolve_weights, weights_cache_path


@pytest.fixture(scope="module")
def random_vgg19_state():
    torch.manual_seed(1)
    return vgg19().state_dict()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME in which downloads fail immediately."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("LEUKOSK_OFFLINE", raising=False)

    import leukosk.weights._imagenet as imagenet

    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(imagenet, "urlopen", no_network)
    return tmp_path / "torch_home"


def test_resolve_names_enums_and_errors(tmp_path):
    assert resolve_weights("IMAGENET1K_V1") is VGG19_Weights.IMAGENET1K_V1
    assert resolve_weights("IMAGENET1K_V1", batch_norm=True) is \
        VGG19_BN_Weights.IMAGENET1K_V1
    assert resolve_weights(VGG19_Weights.IMAGENET1K_V1) is VGG19_Weights.IMAGENET1K_V1
    with pytest.raises(ValueError, match="VGG19_BN_Weights"):
        resolve_weights(VGG19_Weights.IMAGENET1K_V1, batch_norm=True)
    with pytest.raises(ValueError, match="neither .* nor an existing file"):
        resolve_weights(str(tmp_path / "nope.pth"))
    with pytest.raises(TypeError):
        resolve_weights(3)


def test_hub_cache_file_is_used_offline(torch_home, random_vgg19_state):
    target = torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert weights_cache_path(VGG19_Weights.IMAGENET1K_V1) == target
    target.parent.mkdir(parents=True)
    torch.save(random_vgg19_state, target)
    X = torch.zeros(2, 40, 40, 3, dtype=torch.uint8).numpy()
    clf = VGG19LeukocyteClassifier(image_size=32, max_epochs=1, verbose=0,
                                   device="cpu", lr=0.0)
    clf.fit(X, ["a", "b"])  # default weights="IMAGENET1K_V1"
    features = clf.module_.backbone.features
    for i in (0, 34):
        assert torch.equal(features[i].weight, random_vgg19_state[f"features.{i}.weight"])
    fc = clf.module_.backbone.classifier
    assert torch.equal(fc[3].weight, random_vgg19_state["classifier.3.weight"])
    assert fc[6].out_features == 2


def test_missing_weights_fail_fast_with_instructions(torch_home):
    X = torch.zeros(2, 40, 40, 3, dtype=torch.uint8).numpy()
    clf = VGG19LeukocyteClassifier(image_size=32, verbose=0, device="cpu")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        clf.fit(X, ["a", "b"])
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "weights=None" in message and "weights='path/to/vgg19.pth'" in message


def test_offline_switch_skips_the_download(torch_home, monkeypatch):
    def must_not_download(*args, **kwargs):
        raise AssertionError("tried to download")

    import leukosk.weights._imagenet as imagenet

    monkeypatch.setattr(imagenet, "urlopen", must_not_download)
    monkeypatch.setenv("LEUKOSK_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="LEUKOSK_OFFLINE"):
        LeukocyteVGG(n_classes=3, weights="IMAGENET1K_V1")


def test_corrupt_cached_file_is_named(torch_home):
    target = weights_cache_path(VGG19_Weights.IMAGENET1K_V1)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"partial download")
    with pytest.raises(WeightsUnavailableError, match="delete it"):
        LeukocyteVGG(n_classes=3, weights="IMAGENET1K_V1")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_state_dict(tmp_path, random_vgg19_state, suffix):
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(random_vgg19_state, path)
    else:
        from safetensors.torch import save_file

        save_file(random_vgg19_state, str(path))
    net = LeukocyteVGG(n_classes=5, weights=path, image_size=32)
    assert torch.equal(net.backbone.features[2].weight,
                       random_vgg19_state["features.2.weight"])
    assert net.backbone.classifier[6].out_features == 5


class _Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Evil()}, f)
    with pytest.raises(ValueError, match="refused"):
        LeukocyteVGG(n_classes=3, weights=path)


def test_wrong_layout_is_explained(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="do not fit this network: missing .*vgg19"):
        LeukocyteVGG(n_classes=3, weights=path)


def test_narrow_hidden_layers_keep_pretrained_features(tmp_path, random_vgg19_state):
    path = tmp_path / "vgg19.pth"
    torch.save(random_vgg19_state, path)
    net = LeukocyteVGG(n_classes=4, weights=path, hidden_units=64, image_size=32)
    assert torch.equal(net.backbone.features[0].weight,
                       random_vgg19_state["features.0.weight"])
    sizes = [(m.in_features, m.out_features) for m in net.backbone.classifier
             if isinstance(m, torch.nn.Linear)]
    assert sizes == [(25088, 64), (64, 64), (64, 4)]


def test_a_saved_model_is_starting_weights_and_its_head_is_reused(tiny, fast, tmp_path):
    """weights=<model file>: same network settings, units of shared classes kept."""
    import numpy as np

    from leukosk import VGG19LeukocyteClassifier

    X, y = tiny
    fast.update(batch_norm=True, image_size=40, module__hidden_units=32,
                module__crop=0.8, max_epochs=2)
    base = VGG19LeukocyteClassifier(**fast).fit(X, y)
    path = base.save(tmp_path / "base.safetensors")
    keep = y != "eosinophil"
    child = VGG19LeukocyteClassifier(weights=path, max_epochs=0, verbose=0,
                                     random_state=0, device="cpu")
    child.fit(X[keep], y[keep])
    assert child.network_settings()["image_size"] == 40
    assert child.network_settings()["batch_norm"] is True
    assert child.module_.preprocess.crop == 0.8
    rows = [0, 2]  # basophil, platelet in the base model's classes
    np.testing.assert_array_equal(
        child.module_.backbone.classifier[6].weight.detach(),
        base.module_.backbone.classifier[6].weight.detach()[rows])
    np.testing.assert_allclose(child.predict_proba(X[keep]),
                               _renormalised(base.predict_proba(X[keep]), rows), atol=1e-5)


def _renormalised(proba, columns):
    import numpy as np

    logit = np.log(proba[:, columns])
    e = np.exp(logit - logit.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class _Response:
    """What ``urlopen`` returns, serving ``data`` in small reads."""

    def __init__(self, data, pause=0.0):
        import io

        self._data, self._pause = io.BytesIO(data), pause
        self.headers = {"Content-Length": str(len(data))}

    def read(self, n=-1):
        time.sleep(self._pause)
        return self._data.read(min(n, 4096) if n and n > 0 else 4096)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_timeout_is_per_request_not_process_wide(torch_home, monkeypatch):
    """Issue 21: the timeout was set with socket.setdefaulttimeout, for every
    socket of the process, and concurrent downloads restored each other's."""
    import socket

    import leukosk.weights._imagenet as imagenet

    seen = []

    def offline(request, *args, timeout=None, **kwargs):
        seen.append((socket.getdefaulttimeout(), timeout))
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(imagenet, "urlopen", offline)
    assert socket.getdefaulttimeout() is None
    with pytest.raises(WeightsUnavailableError, match="Temporary failure"):
        LeukocyteVGG(n_classes=3, weights="IMAGENET1K_V1")
    assert seen == [(None, imagenet.DOWNLOAD_TIMEOUT_S)]
    assert socket.getdefaulttimeout() is None
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))  # nothing partial


def test_concurrent_downloads_are_checked_and_atomic(tmp_path, monkeypatch):
    """Two threads download at once, each with its own timeout; a file whose
    hash does not match the name's prefix is refused and never cached."""
    import hashlib
    import io
    import socket
    import threading

    import leukosk.weights._imagenet as imagenet

    payloads = {}
    for name in ("a", "b"):
        buffer = io.BytesIO()
        torch.save({"w": torch.full((3,), float(ord(name)))}, buffer)
        digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
        payloads[f"https://example.invalid/{name}-{digest}.pth"] = buffer.getvalue()
    defaults = []

    def serve(request, *, timeout):
        defaults.append(socket.getdefaulttimeout())
        assert timeout == imagenet.DOWNLOAD_TIMEOUT_S
        return _Response(payloads[request.full_url], pause=0.001)

    monkeypatch.setattr(imagenet, "urlopen", serve)
    errors = []

    def fetch(url):
        try:
            imagenet._download(url, tmp_path / url.rsplit("/", 1)[1], progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(url,)) for url in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and defaults == [None, None] and socket.getdefaulttimeout() is None
    for url in payloads:
        state = torch.load(tmp_path / url.rsplit("/", 1)[1], weights_only=True)
        assert float(state["w"][0]) == ord(url.rsplit("/", 1)[1][0])
    bad = "https://example.invalid/c-00000000.pth"
    payloads[bad] = b"not the file"
    with pytest.raises(RuntimeError, match="hash"):
        imagenet._download(bad, tmp_path / "c-00000000.pth", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        url.rsplit("/", 1)[1] for url in payloads if url != bad)



def test_downloaded_weights_get_open_permissions_and_dead_partials_go(tmp_path, monkeypatch):
    """The cached file is readable by the other users of a shared TORCH_HOME
    (open()'s 0o666 less the umask, not mkstemp's 0o600), and the partial file
    of a killed download is removed by the next one."""
    import hashlib
    import io
    import subprocess
    import sys

    import leukosk.weights._imagenet as imagenet

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer)
    name = f"w-{hashlib.sha256(buffer.getvalue()).hexdigest()[:8]}.pth"
    monkeypatch.setattr(imagenet, "urlopen",
                        lambda request, *, timeout: _Response(buffer.getvalue(), pause=0))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"{name}.{dead.pid}-x.partial"  # a killed download's
    left.write_bytes(b"half")
    umask = os.umask(0o022)
    try:
        imagenet._download("https://example.invalid/" + name, tmp_path / name,
                           progress=False)
    finally:
        os.umask(umask)
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert not left.exists()

def _tensors_reachable(root, depth=4):
    """Tensors reachable from ``root`` through at most ``depth`` references."""
    import gc

    seen, frontier, found = {id(root)}, [root], []
    for _ in range(depth):
        following = []
        for obj in frontier:
            for ref in gc.get_referents(obj):
                if id(ref) in seen or isinstance(ref, type):
                    continue
                seen.add(id(ref))
                if isinstance(ref, torch.Tensor):
                    found.append(ref)
                else:
                    following.append(ref)
        frontier = following
    return found


def test_no_state_dict_stays_cached_after_the_network_is_built(tiny, fast, tmp_path):
    """Issue 21: the lru_cache of model files kept the tensors of up to four
    models alive for the whole process."""
    import leukosk.weights._shipped as shipped
    from leukosk.weights._shipped import resolve_leukosk_weights

    X, y = tiny
    path = VGG19LeukocyteClassifier(**fast).fit(X, y).save(tmp_path / "m.safetensors")
    shipped._model_file.cache_clear()
    child = VGG19LeukocyteClassifier(weights=path, max_epochs=0, verbose=0,
                                     device="cpu").fit(X, y)
    assert shipped._model_file.cache_info().currsize == 1  # metadata is cached
    weights = resolve_leukosk_weights(path)
    assert weights.meta["classes"] == tuple(child.classes_)
    assert _tensors_reachable(weights) == []
    state = weights.get_state_dict()  # read again when asked for, each time
    assert torch.equal(state["backbone.features.0.weight"],
                       child.module_.backbone.features[0].weight.detach())
    assert _tensors_reachable(weights) == []


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_full_size_network_is_torchvisions_vgg19_initialised_as_torchvision_does(batch_norm):
    """Built on the meta device and initialised once, the network still has
    torchvision's layers, names and shapes, and its initial weights follow
    torchvision's scheme (conv: Kaiming normal, fan-out; hidden layers:
    N(0, 0.01); biases 0; batch norm 1 and 0), the resized last layer PyTorch's
    default."""
    from torchvision.models import vgg19, vgg19_bn

    from leukosk import LeukocyteVGG

    torch.manual_seed(0)
    ours = LeukocyteVGG(n_classes=8, batch_norm=batch_norm).backbone
    theirs = (vgg19_bn if batch_norm else vgg19)(num_classes=8)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert [(k, v.shape) for k, v in mine.items()] == [(k, v.shape) for k, v in ref.items()]
    assert not any(v.is_meta for v in mine.values())
    for name, value in mine.items():
        if name.startswith("classifier.6"):
            continue  # resized: PyTorch's default, checked below
        if name.endswith("bias"):
            assert not value.any(), name
        elif name.endswith(("running_mean", "num_batches_tracked")):
            assert not value.any(), name
        elif name.endswith("running_var") or (batch_norm and value.dim() == 1):
            assert torch.all(value == 1), name
        elif value.dim() == 4:  # convolution: Kaiming normal, fan-out, ReLU gain
            expected = (2 / (value.shape[0] * value.shape[2] * value.shape[3])) ** 0.5
            assert abs(value.std().item() / expected - 1) < 0.1, name
    for index in (0, 3):
        assert abs(ours.classifier[index].weight.std().item() - 0.01) < 1e-3
    bound = 1 / 4096 ** 0.5  # nn.Linear's default: U(-1/sqrt(fan_in), +1/sqrt(fan_in))
    assert ours.classifier[6].weight.abs().max().item() <= bound


def test_a_seeded_network_is_reproducible_and_leaves_no_global_state():
    from leukosk import LeukocyteVGG

    torch.manual_seed(1)
    a = LeukocyteVGG(n_classes=3, image_size=32, width=0.25, hidden_units=16).state_dict()
    torch.manual_seed(1)
    b = LeukocyteVGG(n_classes=3, image_size=32, width=0.25, hidden_units=16).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
