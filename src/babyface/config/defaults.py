"""Defaults that the configs share with the code below them: ``babyface.data`` imports these from here, so the
configs (and the command line built from them) import nothing from ``babyface.data``."""

# The face options' defaults (babyface.config.faces); each detector's own threshold, alignment and video interval
# are its class's, in babyface.faces' registry.
DEFAULT_DETECTOR = "mtcnn"  # data crop and evaluate: the crops the models are trained on (benchmarks/face_detectors.py)
LIVE_DETECTOR = "blazeface"  # predict, serve, watch and measure: as many faces found as MTCNN at 1/30 of the time (same benchmark)
DEFAULT_MARGIN = 0.2  # added around a detected face on every side, as a share of its size, before it is cut out
DETECT_MAX_SIDE = 640  # images and frames are shrunk to this for detection only; faces are cut from the full image

DEFAULT_MAX_PIXELS = 100_000_000  # images with more pixels are refused (babyface.data.images: decompression bombs)
# an image whose decoding and conversion to RGB would take more memory than this is refused before decoding
DEFAULT_MAX_DECODE_MB = 1024
# largest model input side: 5x what any recipe trains at (the cnn's head grows with its square); bundles claiming more are refused
MAX_IMAGE_SIZE = 512
# near-duplicate score (babyface.data.duplicates), chosen on infant-web: recall of same-photo pairs vs pairs across infants
DEFAULT_THRESHOLD = 0.89
