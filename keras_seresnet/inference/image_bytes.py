"""Decoding encoded image files inside a TensorFlow graph, as `read_image` does with Pillow.

A SavedModel served by TF Serving runs no Python, so its `serve_image_bytes`
signature cannot call `keras_seresnet.data.images.read_image`. It runs
`decode_image_bytes` instead: the same steps, in TensorFlow operations,
with `read_image`'s pixel limit (`MAX_PIXELS`) and output size:

1. The pixel count the file's header declares is checked against
   `max_pixels` before anything is decoded (JPEG, PNG and GIF; BMP is
   uncompressed, so its data bounds its size, and WebP declares at most
   16,383 x 16,383).
2. A JPEG larger than the output is decoded at 1/2, 1/4 or 1/8 scale by
   libjpeg, chosen as Pillow's `draft` chooses it; CMYK and greyscale JPEGs
   become RGB.
3. Transparency (RGBA, grey with alpha, palette with a transparent colour)
   is composited over white; greyscale is repeated over the channels; an
   animation gives its first frame.
4. The largest centred square is cropped and resized to `size` with an
   antialiased bilinear filter, then rounded to whole pixel values, as
   Pillow's `resize(..., BILINEAR)` of a uint8 image is.

The result equals `read_image`'s for a `size` x `size` PNG, BMP or GIF
exactly; where resizing or JPEG decoding happens, the two libraries' integer
rounding differs by at most one pixel level (tested on each format).

Example:

>>> import tensorflow as tf
>>> png = tf.io.encode_png(tf.zeros((40, 50, 3), tf.uint8))
>>> decode_image_bytes(tf.stack([png])).shape
TensorShape([1, 32, 32, 3])
"""

import tensorflow as tf

from keras_seresnet.data.images import MAX_PIXELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
JPEG_SCALES = (1, 2, 4, 8)  # the reduced scales libjpeg decodes at (Pillow's draft)


def decode_image_bytes(images, *, size=32, max_pixels=MAX_PIXELS):
    """Decodes a batch of encoded JPEG, PNG, BMP, GIF or WebP files into RGB pixels.

    Args:
        images: string tensor [N], each element the bytes of one image file.
        size: output side in pixels. Default 32.
        max_pixels: refuse an image whose header declares more pixels than
            this, before decoding it. Default `MAX_PIXELS` (40 megapixels).

    Returns:
        float32 tensor [N, size, size, 3] of whole RGB values in [0, 255].

    Raises:
        tf.errors.InvalidArgumentError: when run, for an element that is
            empty, not an image of these formats, corrupt or truncated
            ("Invalid PNG data", "Unknown image file format"), or declares
            more than `max_pixels` pixels. The whole batch fails, as a TF
            Serving request does.
    """
    return tf.map_fn(
        lambda data: _decode_one(data, size, max_pixels),
        images,
        fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
    )


def _decode_one(data, size, max_pixels):
    is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    height, width = _declared_size(data, is_png)
    check = tf.debugging.Assert(
        height * width <= max_pixels,
        [
            tf.strings.format(
                "Image refused before decoding: its header declares {}x{} pixels, more than the "
                f"limit of {max_pixels:,}",
                (width, height),
            )
        ],
    )
    with tf.control_dependencies([check]):
        image = tf.case(
            [
                (tf.io.is_jpeg(data), lambda: _decode_jpeg(data, height, width, size)),
                (is_png, lambda: _over_white(tf.io.decode_png(data, channels=4))),
            ],
            # GIF (first frame), BMP and WebP; anything else fails here with
            # TensorFlow's "Unknown image file format" error.
            default=lambda: tf.cast(
                tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32
            ),
        )
    return _square_resize(image, size)


def _declared_size(data, is_png):
    """int64 (height, width) as the header declares them; (0, 0) where not read (BMP, WebP)."""
    # Reading past the end of a short string is an error of its own; padding
    # lets the decoder report the truncated file instead.
    padded = tf.strings.join([data, tf.constant(b"\0" * 24)])

    def header_bytes(start, count):
        return tf.cast(
            tf.io.decode_raw(tf.strings.substr(padded, start, count), tf.uint8), tf.int64
        )

    def png():  # IHDR: big-endian 32-bit width, then height, at byte 16
        b = header_bytes(16, 8)
        return (
            b[4] * 2**24 + b[5] * 2**16 + b[6] * 2**8 + b[7],
            b[0] * 2**24 + b[1] * 2**16 + b[2] * 2**8 + b[3],
        )

    def gif():  # logical screen: little-endian 16-bit width, then height, at byte 6
        b = header_bytes(6, 4)
        return b[3] * 256 + b[2], b[1] * 256 + b[0]

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data, output_type=tf.int64)
        return shape[0], shape[1]

    is_gif = tf.reduce_any([tf.equal(tf.strings.substr(padded, 0, 6), s) for s in GIF_SIGNATURES])
    return tf.case(
        [(tf.io.is_jpeg(data), jpeg), (is_png, png), (is_gif, gif)],
        default=lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
    )


def _decode_jpeg(data, height, width, size):
    """RGB at the largest of 1/8, 1/4, 1/2 scale still `size` wide, as Pillow's `draft` decodes."""
    fits = tf.minimum(height // size, width // size)
    branch = tf.reduce_sum(tf.cast(fits >= tf.constant(JPEG_SCALES[1:], tf.int64), tf.int32))

    def at_scale(scale):
        # INTEGER_ACCURATE is libjpeg's default method, the one Pillow uses.
        return lambda: tf.cast(
            tf.io.decode_jpeg(data, channels=3, ratio=scale, dct_method="INTEGER_ACCURATE"),
            tf.float32,
        )

    return tf.switch_case(branch, [at_scale(scale) for scale in JPEG_SCALES])


def _over_white(rgba):
    rgba = tf.cast(rgba, tf.float32)
    alpha = rgba[..., 3:] / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def _square_resize(image, size):
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    resized = tf.cond(
        tf.equal(side, size) & tf.equal(height, width),
        lambda: square,
        lambda: tf.image.resize(square, (size, size), method="bilinear", antialias=True),
    )
    return tf.ensure_shape(tf.clip_by_value(tf.round(resized), 0.0, 255.0), (size, size, 3))
