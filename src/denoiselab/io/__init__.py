"""Read and write images: PNG, JPEG and TIFF <-> float32 arrays in [0, 1].

Which library handles what, and why
-----------------------------------
All decoding and encoding goes through maintained codec libraries; denoiselab contains no
hand-written codec (image decoders are a classic source of security bugs, and these libraries
are fuzzed and patched upstream):

* **PNG and JPEG: Pillow** (the library imageio's ``pillow`` plugin wraps). We call it directly
  because we need its lazy ``Image.open`` to check the header size *before* decoding
  (decompression-bomb guard), its ``load()``/``verify()`` to force a full decode and CRC check
  (truncated files are errors; ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never changed), and
  its modes to tell 8- from 16-bit. Pillow has no 16-bit RGB mode, so 16-bit RGB(A) PNGs are
  refused on read and write (use TIFF) rather than silently truncated to 8 bits.
* **TIFF: tifffile**, which reads page headers without decoding (size check first), handles
  multi-page stacks, 8/16-bit integer and float samples, and the tags we round-trip
  (ImageDescription, X/YResolution, ResolutionUnit, PhotometricInterpretation). Files are
  written uncompressed, so reading them back needs no optional codec package.

Conventions
-----------
Arrays are float32, channel-last: ``(H, W, C)`` for one image, ``(P, H, W, C)`` for a TIFF
stack, with C = 1 (gray) or 3 (RGB); `to_tensor`/`from_tensor` convert to and from the
``(B, C, H, W)`` layout the denoisers use. Every problem a user can fix raises
`denoiselab.errors.DenoiselabError` with a one-line message naming the file. Writes are atomic
(temp file in the same folder + ``os.replace``) and can refuse to overwrite protected inputs.
"""

from ._atomic import atomic_write, same_file
from ._common import ImageFile
from ._read import read_image
from ._tensor import from_tensor, to_tensor
from ._write import write_image

__all__ = [
    "ImageFile",
    "atomic_write",
    "from_tensor",
    "read_image",
    "same_file",
    "to_tensor",
    "write_image",
]
