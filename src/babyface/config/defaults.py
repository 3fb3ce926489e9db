"""Defaults that the configs share with the code below them: ``babyface.data`` imports these from here, so the
configs (and the command line built from them) import nothing from ``babyface.data``."""

# The face pipeline's defaults (babyface.faces.detectors), shared by data crop, evaluate, predict, serve and video.
DETECTORS = ("blazeface", "mtcnn", "haar")
DEFAULT_DETECTOR = "mtcnn"  # data crop and evaluate: the crops the models are trained on (benchmarks/face_detectors.py)
LIVE_DETECTOR = "blazeface"  # predict, serve and watch: as many faces found as MTCNN at 1/30 of the time (same benchmark)
# confidence to accept a face when none is given; BlazeFace: MediaPipe uses 0.5, but false faces on busy
# backgrounds score 0.5-0.6 (benchmarks/face_detectors.py)
DETECTOR_MIN_SCORES = {"blazeface": 0.55, "mtcnn": 0.9, "haar": 0.9}
DEFAULT_MARGIN = 0.2  # added around a detected face on every side, as a share of its size, before it is cut out
# videos and watch: detect on every N-th frame when --detect-every is not given (benchmarks/video_speed.py)
DETECT_EVERY = {"blazeface": 1, "mtcnn": 5, "haar": 5}
DETECT_MAX_SIDE = 640  # photos are shrunk to this for detection only; faces are cut from the full image

DEFAULT_MAX_PIXELS = 100_000_000  # images with more pixels are refused (babyface.data.images: decompression bombs)
# an image whose decoding and conversion to RGB would take more memory than this is refused before decoding
DEFAULT_MAX_DECODE_MB = 1024
# largest model input side: 5x what any recipe trains at (the cnn's head grows with its square); bundles claiming more are refused
MAX_IMAGE_SIZE = 512
# near-duplicate score (babyface.data.duplicates), chosen on infant-web: recall of same-photo pairs vs pairs across infants
DEFAULT_THRESHOLD = 0.89
