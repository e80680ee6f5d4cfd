"""Checking and converting image inputs.

Everything the estimators accept as ``X`` passes through :func:`check_images`,
which returns one of two canonical forms:

* a NumPy array of shape ``(n, H, W, 3)``, ``uint8`` (0-255) or ``float32``
  (0-1), or
* a list of ``str`` paths to image files, decoded lazily by :func:`decode_image`.

The model never sees anything else, so every mistake is caught here with a
message that names the problem and the fix.
"""

import os

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

__all__ = ["IMAGE_SUFFIXES", "check_images", "chw_batch", "decode_image", "image_arrays",
           "resize_batch", "take_images"]

_MAX_LISTED = 5

#: The file suffixes (lower case) that mark a file in a searched folder as an
#: image: :func:`leukosk.datasets.list_images` reads these and ignores the
#: rest. A file named explicitly is tried whatever its suffix.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})


def _listing(items):
    shown = ", ".join(repr(str(i)) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _is_path_like(obj):
    return isinstance(obj, (str, os.PathLike))


def _looks_like_paths(X):
    if isinstance(X, np.ndarray):
        return X.ndim == 1 and X.dtype.kind in "USO" and X.size > 0 and (
            X.dtype.kind != "O" or _is_path_like(X[0]))
    if isinstance(X, (list, tuple)):
        return len(X) > 0 and _is_path_like(X[0])
    return False


def check_images(X, *, check_files=True):
    """Validate ``X`` and return it as an image array or a list of paths.

    Parameters
    ----------
    X : array-like of shape (n, H, W, 3) or sequence of path-like
        Images as ``uint8`` (0-255), another integer type holding 0-255 values,
        or floats in [0, 1]; or paths to image files.
    check_files : bool, default=True
        For paths: check that each file exists and that its header is a
        readable image format (reads a few bytes per file, not the pixels).

    Returns
    -------
    images : ndarray of shape (n, H, W, 3) or list of str
        ``uint8`` or ``float32`` array, or absolute-or-relative file paths.

    Raises
    ------
    TypeError, ValueError
        With a message that names the problem and how to fix it.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.utils._images import check_images
    >>> check_images(np.zeros((2, 8, 8, 3), dtype=np.uint8)).shape
    (2, 8, 8, 3)
    >>> check_images(np.zeros((2, 8, 8), dtype=np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: X has shape (2, 8, 8), expected ...
    """
    if _is_path_like(X):
        raise TypeError(
            f"X is a single path ({str(X)!r}); pass a sequence of image paths, "
            f"e.g. [{str(X)!r}].")
    if _looks_like_paths(X):
        return _check_paths(X, check_files=check_files)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    return _check_array(X)


def _check_paths(X, *, check_files):
    paths = [os.fspath(p) if _is_path_like(p) else p for p in X]
    bad = [p for p in paths if not isinstance(p, str)]
    if bad:
        raise TypeError(
            "X mixes paths with other objects "
            f"({_listing([type(b).__name__ for b in bad])}); pass only paths, "
            "or only an image array.")
    if check_files:
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise ValueError(
                f"{len(missing)} image path(s) do not exist or are not files: "
                f"{_listing(missing)}. Check the paths (relative paths are "
                f"resolved against the working directory {os.getcwd()!r}).")
        unreadable = [p for p in paths if not _has_image_header(p)]
        if unreadable:
            raise ValueError(
                f"{len(unreadable)} file(s) are not readable images: "
                f"{_listing(unreadable)}. Remove them from X; "
                "leukosk.datasets loaders skip and report such files.")
    return paths


def _has_image_header(path):
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size[0] > 0 and img.size[1] > 0
    except _decoding_errors():
        return False


def _decoding_errors():
    """What PIL raises for files it cannot (or will not) decode."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, Image.DecompressionBombError, OSError,
            ValueError, SyntaxError)


def image_problem(path):
    """Why the file ``path`` cannot be used as an image, or None if it can.

    Checks without blocking (a FIFO is never opened) and decodes the image
    fully (a header check misses truncated files).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from leukosk.utils._images import image_problem
    >>> with tempfile.TemporaryDirectory() as d:
    ...     empty = pathlib.Path(d, "cell.jpg")
    ...     _ = empty.write_bytes(b"")
    ...     image_problem(empty), image_problem(pathlib.Path(d, "gone.jpg"))
    ('empty file', 'unreadable: No such file or directory')
    """
    import stat

    from PIL import Image

    try:
        info = os.stat(path)
    except OSError as exc:
        return ("broken link" if os.path.islink(path)
                else f"unreadable: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty file"
    try:
        with Image.open(path) as img:
            img.load()
    except _decoding_errors() as exc:
        return image_error(exc)
    return None


def image_error(exc):
    """A short reason for a file that failed to decode (for data reports).

    Examples
    --------
    >>> from PIL import UnidentifiedImageError
    >>> from leukosk.utils._images import image_error
    >>> image_error(UnidentifiedImageError("cannot identify image file"))
    'not an image'
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large to decode safely ({exc})"
    return f"unreadable image ({exc})"


def _shape_hint(shape):
    if len(shape) == 2:
        return ("a 2-D array looks like tabular or flattened data; reshape "
                "flattened images with X.reshape(n, H, W, 3)")
    if len(shape) == 3:
        return ("for one RGB image use X[np.newaxis]; for a batch of grayscale "
                "images use np.repeat(X[..., np.newaxis], 3, axis=-1)")
    if len(shape) == 4 and shape[-1] == 1:
        return ("grayscale images: convert with np.repeat(X, 3, axis=-1)")
    if len(shape) == 4 and shape[-1] == 4:
        return "RGBA images: drop the alpha channel with X[..., :3]"
    if len(shape) == 4 and shape[1] in (1, 3, 4):
        return ("channels-first (n, C, H, W) layout: convert with "
                "np.moveaxis(X, 1, -1)")
    return "expected (n_images, height, width, 3) RGB images"


def _check_array(X):
    try:
        X = np.asarray(X)
    except ValueError as exc:
        raise ValueError(
            "X could not be made into one array (images of different sizes?). "
            "Resize them to one size, or pass file paths, which are resized "
            f"on loading. Details: {exc}") from exc
    if X.dtype.kind not in "uif" or X.dtype == np.bool_:
        raise TypeError(
            f"X has dtype {X.dtype}; expected uint8 (0-255) or float (0-1) "
            "RGB images, or a sequence of image file paths.")
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(
            f"X has shape {X.shape}, expected (n_images, height, width, 3): "
            f"{_shape_hint(X.shape)}.")
    if X.shape[0] == 0:
        raise ValueError("X is empty (0 images); pass at least one image.")
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"X has shape {X.shape}: images must not be empty.")
    if X.dtype == np.uint8:
        return X
    if X.dtype.kind in "ui":
        return _integer_to_uint8(X)
    return _float_to_float32(X)


def _integer_to_uint8(X):
    lo, hi = int(X.min()), int(X.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"X has integer dtype {X.dtype} with values in [{lo}, {hi}]; "
            "integer images must hold 8-bit values 0-255. Rescale 16-bit "
            "images with (X // 257).astype(np.uint8).")
    return X.astype(np.uint8)


def _float_to_float32(X):
    if not np.all(np.isfinite(X)):
        n_bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
        raise ValueError(
            f"X contains {n_bad} NaN or infinite value(s); replace or drop "
            "those images (e.g. np.nan_to_num) before fitting or predicting.")
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"X is a float array with values in [{lo:g}, {hi:g}]; float "
            "images must lie in [0, 1]. Divide 0-255 values by 255, or pass "
            "them as uint8 with X.astype(np.uint8).")
    return X.astype(np.float32, copy=False)


#: PIL modes of 16-bit (or wider) integer grayscale images.
_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _wide_gray_to_rgb(img):
    """A 16-bit grayscale image scaled to 8 bits (PIL's ``convert("RGB")``
    clips such values at 255, turning most pixels white)."""
    values = np.asarray(img, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"{img.mode} image with values in [{values.min()}, "
                         f"{values.max()}]: not 16-bit; convert it to 8-bit RGB")
    gray = ((values + 128) // 257).astype(np.uint8)  # 65535 -> 255, rounded
    return np.repeat(gray[..., np.newaxis], 3, axis=-1)


def _fix_for(exc):
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return ("Crop or downscale it first; if you trust the file, raise "
                "PIL.Image.MAX_IMAGE_PIXELS.")
    return ("The file is not an image, or is truncated or corrupt: remove it "
            "or replace it with a good copy.")


def rgb_array(source):
    """PIL's decoding of ``source`` (a path or a binary file object) as an
    (H, W, 3) ``uint8`` RGB array; PIL's exceptions pass through.

    16-bit grayscale (``I;16``) images are scaled to 8 bits; floating-point
    images are refused (their value range is unknown).
    """
    from PIL import Image

    with Image.open(source) as img:
        if img.mode in _WIDE_GRAY:
            return _wide_gray_to_rgb(img)
        if img.mode == "F":
            raise ValueError("floating-point image (PIL mode F): its value range "
                             "is unknown; save it as 8-bit RGB")
        return np.array(img.convert("RGB"))


def decode_image(path):
    """Decode one image file to a ``uint8`` RGB array of shape (H, W, 3).

    Grayscale, palette and RGBA files are converted to RGB (alpha dropped);
    16-bit grayscale files are scaled to 8 bits.

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype uint8

    Raises
    ------
    ValueError
        If the file cannot be decoded (not an image, truncated or corrupt);
        the message names the file.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from leukosk.utils._images import decode_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.new("L", (5, 4)).save(d + "/gray.png")
    ...     decode_image(d + "/gray.png").shape
    (4, 5, 3)
    """
    try:
        return rgb_array(path)
    except _decoding_errors() as exc:
        raise ValueError(
            f"cannot decode image file {str(path)!r}: {image_error(exc)}. "
            f"{_fix_for(exc)}") from exc


def resize_batch(images, size):
    """Resize a batch of CHW images to ``size x size`` (whole image, no crop).

    Bilinear interpolation with antialiasing, as MATLAB's ``imresize`` and
    torchvision's ``Resize`` do; works on ``uint8`` and float tensors, on any
    device. A batch already at the size is returned unchanged.

    Parameters
    ----------
    images : torch.Tensor of shape (n, C, H, W) or (C, H, W)
    size : int

    Returns
    -------
    torch.Tensor of shape (n, C, size, size) or (C, size, size)

    Examples
    --------
    >>> import torch
    >>> from leukosk.utils._images import resize_batch
    >>> resize_batch(torch.zeros(2, 3, 36, 40, dtype=torch.uint8), 32).shape
    torch.Size([2, 3, 32, 32])
    """
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return TF.resize(images, [size, size], antialias=True)


def image_arrays(images):
    """Checked images as pixel arrays: an (n, H, W, 3) array as it is, paths
    decoded (a list of arrays, each its own size)."""
    images = check_images(images)
    return images if isinstance(images, np.ndarray) else [decode_image(p) for p in images]


def take_images(images, index):
    """The images ``index`` selects, in the form they came in.

    An array is indexed as NumPy does; any other sequence (a list of paths,
    or anything with ``len`` and integer indexing) gives a list, for an index
    that is a slice, integers or a boolean mask.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.utils._images import take_images
    >>> take_images(["a.jpg", "b.jpg", "c.jpg"], [2, 0])
    ['c.jpg', 'a.jpg']
    >>> take_images(["a.jpg", "b.jpg", "c.jpg"], np.array([True, False, True]))
    ['a.jpg', 'c.jpg']
    >>> take_images(np.zeros((3, 4, 4, 3)), slice(1, None)).shape
    (2, 4, 4, 3)
    """
    if isinstance(images, np.ndarray):
        return images[index]
    if isinstance(index, slice):
        return images[index]
    return [images[i] for i in np.arange(len(images))[index]]


def chw_batch(chunk):
    """A chunk of checked images (NHWC array, or paths) as a (n, 3, H, W)
    tensor; paths decoded here, as a list of (3, H, W) tensors when their
    sizes differ."""
    if isinstance(chunk, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2)
    images = [torch.from_numpy(decode_image(path)).permute(2, 0, 1) for path in chunk]
    if len({tuple(i.shape) for i in images}) == 1:
        return torch.stack(images)
    return images
