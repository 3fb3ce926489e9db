"""Defaults that the configs share with the code below them: ``babyface.data`` imports these from here, so the
configs (and the command line built from them) import nothing from ``babyface.data``."""

# The face pipeline's defaults (babyface.data.faces), shared by data crop, evaluate, predict, serve and video.
DETECTORS = ("mtcnn", "haar")
DEFAULT_DETECTOR = "mtcnn"
DEFAULT_MIN_SCORE = 0.9  # detector confidence to accept a face
DEFAULT_MARGIN = 0.2  # added around a detected face on every side, as a share of its size, before it is cut out
DETECT_MAX_SIDE = 640  # photos are shrunk to this for detection only; faces are cut from the full image

DEFAULT_MAX_PIXELS = 100_000_000  # images with more pixels are refused (babyface.data.images: decompression bombs)
# near-duplicate score (babyface.data.duplicates), chosen on infant-web: recall of same-photo pairs vs pairs across infants
DEFAULT_THRESHOLD = 0.89
