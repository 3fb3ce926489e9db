"""Commands that use a trained run: evaluate, predict, export, explain, report, serve, watch, ensemble and compare
(the face and video options they nest are babyface.config.faces')."""

from __future__ import annotations

from typing import Annotated, Literal

from babyface.config.base import ConfigModel, option, zero_or_at_least
from babyface.config.defaults import DEFAULT_MAX_PIXELS
from babyface.config.faces import FaceDetection, TrainingCropDetection, VideoOptions, faces_option, video_option
from babyface.config.training import DEVICE_HELP, PRECISION_HELP, PROGRESS_HELP

FACES, OUTPUT, VIDEO, RUNTIME, DATA, STATISTICS, SERVER, EVENTS, SOURCE = (
    "faces", "output", "videos", "model and runtime", "data", "statistics", "server", "events", "camera or stream")

Tta = Literal["none", "flip"]
Framing = Literal["face", "whole"]
ModelFraming = Literal["auto", "face", "whole"]  # auto: as the bundle records its training images
Backend = Literal["auto", "torch", "onnx"]
Precision = Literal["auto", "fp32", "bf16"]

RUN_HELP = "run folder written by 'babyface train' (or by 'babyface ensemble')"
TTA_HELP = "test-time augmentation: none, or flip (average the calibrated probabilities of each image and its mirror)"
FRAMING_HELP = ("auto: as the run's training images were framed (model.json records it: face for runs trained on "
                "'babyface data crop' output, whole for runs trained on tight crops; face when a run does not say); "
                "face: classify the square around each image's largest detected face, cut as 'babyface data crop' cuts "
                "it (the whole image when no face is found); whole: classify images as given, for images that are "
                "already tight face crops")
MIN_CONFIDENCE_HELP = ("below this top probability the label is 'uncertain' (the probabilities are still reported); "
                       "0 = always name the most likely class")
ONNX_HELP = "ONNX file for --backend onnx, e.g. RUN/model.int8.onnx; empty = RUN/model.onnx"
BATCH_HELP = "images per forward pass (more is faster but needs more memory)"
MEASURES_HELP = ("also measure each face (eye openness, smile, brow lowering, frown, mouth opening, head pose; "
                 "see 'babyface measure'): extra columns in the predictions and in videos' timeline.csv, and a "
                 "measures panel under each face in timeline.png")
GROUP_BY_EVAL_HELP = (
    "which test images belong together (one infant, one video): a --manifest column (e.g. identity_group) or "
    "'near-duplicates' (copies and near-copies of a photo); accuracy and macro-F1 then also get a 95% interval that "
    "resamples whole groups, the one to quote, because images of one infant are not independent; empty = the "
    "--group-by the run was trained with when it is evaluated on its own test split, else none; none = no groups")
GROUP_MANIFEST_HELP = ("CSV with a 'file' column (paths relative to the data folder, e.g. test/happy/a.jpg) and the "
                       "--group-by column")
SMOOTH_HELP = "moving average of each face's probabilities over this many used frames (1 = none)"


def precision_option(group: str | None = RUNTIME) -> str:
    return option("auto", PRECISION_HELP + " (PyTorch back end; ONNX files carry their own)", group=group)


class EvalConfig(ConfigModel):
    """``babyface evaluate``: metrics with 95% intervals, calibration, plots and predictions on a test set."""

    run: str = option("", RUN_HELP, positional="1")
    data: str = option("", "DATA (its test/ split) or a folder of class folders; empty = the data the run was trained "
                           "on", positional="?")
    sources: list[str] = option(description="another dataset to evaluate on together with DATA (repeatable), classes "
                                            "matched by folder name after --label-map; none = the sources the run was "
                                            "trained on", default_factory=list, flag="--data", metavar="DATA",
                                group=DATA)
    label_map: str = option("", "YAML mapping folder class -> model class (null drops the class); empty = the label "
                                "map the run was trained with", metavar="YAML", group=DATA)
    out: str = option("", "folder for the results; empty = RUN/evaluation", metavar="DIR", group=OUTPUT)
    batch_size: int = option(64, BATCH_HELP, ge=1, group=RUNTIME)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    grid_size: int = option(18, "test images shown in predictions_grid.png (a mix of right and wrong)", ge=1,
                            group=OUTPUT)
    seed: int = option(0, "random seed of the bootstrap resampling and of the images picked for the grid",
                       group=STATISTICS)
    bootstrap: Annotated[int, zero_or_at_least(100)] = option(
        1000, "bootstrap resamples for the 95% intervals of accuracy and F1 (0 = no intervals; at least 100 otherwise)",
        ge=0, group=STATISTICS)
    metadata: str = option("", "CSV with a 'file' column and the --by columns; empty = DATA/metadata.csv", metavar="CSV",
                           group=STATISTICS)
    by: str = option("", "metadata column(s) to report metrics for each value of, comma-separated, e.g. "
                         "skin_tone,grayscale; empty = no subgroups", metavar="COLUMNS", group=STATISTICS)
    group_by: str = option("", GROUP_BY_EVAL_HELP, metavar="COLUMN", group=STATISTICS)
    manifest: str = option("", GROUP_MANIFEST_HELP, metavar="CSV", group=STATISTICS)
    overwrite: bool = option(False, "write into a --out folder that already holds results", group=OUTPUT)
    strict: bool = option(False, "stop at the first image that cannot be decoded instead of skipping and counting it, and "
                                 "refuse test images that copy training images", group=DATA)
    progress: bool = option(True, PROGRESS_HELP, group=OUTPUT)
    leakage_check: bool = option(True, "warn (refuse with --strict) when test images are copies of the run's training "
                                       "images", group=DATA)
    tta: Tta = option("none", TTA_HELP, group=RUNTIME)
    backend: Backend = option("torch", "run the model with torch, or with onnx (RUN/model.onnx, or --onnx FILE, e.g. the "
                                       "int8 export) to measure the exported model itself; auto = onnx when "
                                       "RUN/model.onnx exists", group=RUNTIME)
    onnx: str = option("", ONNX_HELP, metavar="FILE", group=RUNTIME)
    precision: Precision = precision_option()
    framing: ModelFraming = option("auto", FRAMING_HELP, group=FACES)
    faces: TrainingCropDetection = faces_option(TrainingCropDetection)


class PredictConfig(ConfigModel):
    """``babyface predict``: the emotion in images, or of every face over time in videos."""

    run: str = option("", RUN_HELP, positional="1")
    inputs: list[str] = option(description="image files and/or folders, or video files (.mp4, .avi, .mov, .mkv, ...)",
                               default_factory=list, positional="+")
    format: Literal["table", "json", "csv"] = option("table", "how predictions are printed or written", group=OUTPUT)
    output: str = option("", "write the predictions to this file instead of printing them", metavar="FILE",
                         group=OUTPUT)
    min_confidence: float = option(0.0, MIN_CONFIDENCE_HELP, ge=0, le=1, group=OUTPUT)
    batch_size: int = option(64, BATCH_HELP, ge=1, group=RUNTIME)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    strict: bool = option(False, "stop at the first file that cannot be decoded instead of skipping it with a warning",
                          group=RUNTIME)
    backend: Backend = option(
        "auto", "inference engine: torch, onnx (onnxruntime, faster on CPUs; needs 'babyface export'), or auto = onnx "
                "when RUN/model.onnx exists and onnxruntime is installed", group=RUNTIME)
    onnx: str = option("", ONNX_HELP, metavar="FILE", group=RUNTIME)
    precision: Precision = precision_option()
    tta: Tta = option("none", TTA_HELP, group=RUNTIME)
    framing: ModelFraming = option("auto", FRAMING_HELP + " (photos; in videos faces are always detected)", group=FACES)
    out: str = option("", "videos: folder for timeline.csv and timeline.png; empty = RUN/videos/<video name>",
                      metavar="DIR", group=VIDEO)
    annotate: str = option("", "videos: also write this video file with boxes and labels drawn in (one input video "
                               "only); empty = none", metavar="FILE", group=VIDEO)
    video: VideoOptions = video_option()
    smooth: int = option(5, "videos: " + SMOOTH_HELP, ge=1, group=VIDEO)
    faces: FaceDetection = faces_option()
    overwrite: bool = option(False, "videos: write into a --out folder, or over an --annotate file, that already exists",
                             group=VIDEO)
    progress: bool = option(True, PROGRESS_HELP, group=OUTPUT)
    measures: bool = option(False, MEASURES_HELP, group=OUTPUT)


class MeasureConfig(ConfigModel):
    """``babyface measure``: eye openness, smile, brow lowering, frown, mouth opening and head pose of every face in
    photos and videos, from MediaPipe's landmark and blendshape models; no trained run needed."""

    inputs: list[str] = option(description="image files and/or folders, or video files (.mp4, .avi, .mov, .mkv, ...)",
                               default_factory=list, positional="+")
    format: Literal["table", "json", "csv"] = option("table", "photos: how the measures are printed or written (one row "
                                                              "per face)", group=OUTPUT)
    output: str = option("", "photos: write the measures to this file instead of printing them", metavar="FILE",
                         group=OUTPUT)
    out: str = option("measures", "videos: folder for timeline.csv (a row per face per frame) and timeline.png; with "
                                  "several videos, one folder each inside it", metavar="DIR", group=VIDEO)
    overwrite: bool = option(False, "videos: write into a --out folder that already holds results", group=VIDEO)
    strict: bool = option(False, "stop at the first file that cannot be decoded instead of skipping it with a warning",
                          group=RUNTIME)
    framing: Framing = option("face", "photos: face = measure every detected face (the whole image when none is found); "
                                      "whole = the image is one face crop", group=FACES)
    faces: FaceDetection = faces_option()
    video: VideoOptions = video_option()
    progress: bool = option(True, PROGRESS_HELP, group=OUTPUT)


class ExportConfig(ConfigModel):
    """``babyface export``: the run's model as ONNX, checked against PyTorch."""

    run: str = option("", RUN_HELP, positional="1")
    format: Literal["onnx"] = option("onnx", "export format")
    out: str = option("", "file to write; empty = RUN/model.onnx, with --int8 RUN/model.int8.onnx", metavar="FILE")
    int8: bool = option(False, "static int8 quantisation, calibrated on --calibration images (smaller and faster on "
                               "CPUs, slightly less exact)")
    calibration: str = option("", "images to calibrate --int8 on and to check parity on: DATA (its training images) or "
                                  "a folder of images; empty = the run's own validation images (its splits.csv), else "
                                  "parity on random images", metavar="DIR")
    calibration_images: int = option(200, "at most this many --calibration images are used", ge=1)
    parity_images: int = option(100, "images for the logit comparison with PyTorch (--calibration images, else random "
                                     "ones)", ge=1)
    overwrite: bool = option(False, "replace an existing --out file")


class ExplainConfig(ConfigModel):
    """``babyface explain``: Grad-CAM heatmaps of the region that drove each prediction."""

    run: str = option("", RUN_HELP, positional="1")
    inputs: list[str] = option(description="image files and/or folders", default_factory=list, positional="+")
    out: str = option("", "folder for the overlays; empty = RUN/explanations", metavar="DIR")
    target_class: str = option("", "explain this class instead of the predicted one; empty = the predicted class",
                               flag="--class", metavar="NAME")
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE")
    overwrite: bool = option(False, "write into a --out folder that already holds results")


class ReportConfig(ConfigModel):
    """``babyface report``: one self-contained report.html and a model_card.md."""

    run: str = option("", RUN_HELP + ", evaluated with 'babyface evaluate'", positional="1")
    eval: str = option("", "evaluation folder to report on; empty = RUN/evaluation", metavar="DIR")
    out: str = option("", "folder for report.html and model_card.md; empty = the run folder", metavar="DIR")
    gallery: int = option(8, "most confident mistakes shown with their Grad-CAMs (0 = none)", ge=0)
    device: str = option("auto", DEVICE_HELP + " (for the Grad-CAMs)", metavar="DEVICE")
    overwrite: bool = option(False, "replace an earlier report.html and model_card.md")


class ServeConfig(ConfigModel):
    """``babyface serve``: a web page and JSON API that find each face in a photo or webcam frame."""

    run: str = option("", RUN_HELP, positional="1")
    host: str = option("127.0.0.1", "address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (every network "
                                    "interface: the page is then reachable from the network)", metavar="ADDRESS",
                       group=SERVER)
    port: int = option(8000, "TCP port to listen on (0 = any free port)", ge=0, le=65535, group=SERVER)
    token: str = option("", "a secret that /predict, /model and the --live stream require (API clients send "
                            "'Authorization: Bearer SECRET'; the page asks for it once, or open http://HOST:PORT/#token=SECRET); needed with any --host "
                            "but 127.0.0.1/localhost; empty = $BABYFACE_TOKEN, else none", metavar="SECRET",
                        group=SERVER)
    insecure: bool = option(False, "allow a --host other than 127.0.0.1/localhost without --token: anyone who can reach "
                                   "the port can use the page and API (a warning is printed)", group=SERVER)
    max_upload_mb: float = option(10.0, "largest accepted upload, in megabytes", gt=0, metavar="MB", group=SERVER)
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse uploads whose header claims more pixels than this, before "
                                                 "decoding (a 413 answer)", gt=0, group=SERVER)
    max_image_mb: float = option(512.0, "memory one upload may take while it is decoded and converted to RGB, estimated "
                                        "from its header before decoding (a 16-bit 10,000x10,000 PNG of 200 KB needs "
                                        "~1.9 GB); a larger JPEG is decoded at 1/2, 1/4 or 1/8 size instead, anything "
                                        "else gets a 413. At most --workers uploads are decoded at a time",
                                 gt=0, metavar="MB", group=SERVER)
    request_timeout: float = option(30.0, "seconds a client may take to send a whole request (headers and upload); "
                                          "a slower one gets a 408 and is disconnected", gt=0, metavar="SECONDS",
                                    group=SERVER)
    max_connections: int = option(200, "open connections at most (also capped by the process's open-file limit); when "
                                       "full, the slowest idle connection is closed to make room, and a new one is "
                                       "refused only if every connection is busy", ge=1, group=SERVER)
    onnx: bool = option(True, "on a CPU, also consider onnxruntime back ends (fp32 and int8, exported at start-up into a "
                              "temporary folder, a few seconds; the run folder is not touched) and serve whichever back "
                              "end measures fastest (see --precision); --no-onnx considers PyTorch only", group=RUNTIME)
    workers: int = option(2, "requests whose faces are detected at the same time (one thread each; about one per CPU "
                             "core)", ge=1, group=SERVER)
    faces: FaceDetection = faces_option()
    min_confidence: float = option(0.0, MIN_CONFIDENCE_HELP, ge=0, le=1, group=RUNTIME)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    tta: Tta = option("none", TTA_HELP, group=RUNTIME)
    precision: Precision = option("auto", PRECISION_HELP + "; on a CPU serve measures every back end at start-up (torch in "
                                          "fp32 and, where native, bf16; onnx fp32 and int8 with --onnx) and serves the "
                                          "fastest whose decisions agree with fp32 on 99% of the run's validation images; "
                                          "fp32 or bf16 fixes the PyTorch number format and skips int8", group=RUNTIME)
    live: str = option("", "a camera index (0), video file or stream URL (rtsp://...) to show annotated on the page, as "
                           "'babyface watch' would read it: every face boxed and labelled, streamed to the page (GET "
                           "/live) behind the same --token; a camera or stream that drops is reopened, a video file "
                           "plays once at its own speed; empty: no live view", metavar="SOURCE", group="live view")
    live_fps: float = option(10.0, "the most frames per second the live view sends to each viewer (the analysis itself "
                                   "runs as fast as the CPU allows, skipping frames it cannot keep up with); lower it "
                                   "for a slow network", ge=0.5, le=30, metavar="FPS", group="live view")


class WatchConfig(ConfigModel):
    """``babyface watch``: a baby monitor. Faces in a camera, video file or stream, followed until stopped; events as
    JSON lines when a face's smoothed label changes or it stays sad too long. No frame is ever stored."""

    run: str = option("", RUN_HELP, positional="1")
    source: str = option("", "a camera index (0 = the first camera), a video file, or a stream URL OpenCV can open "
                             "(rtsp://..., http://...)", positional="1")
    events: str = option("", "also append the events to this JSON-lines file (its folder must exist; a failed write "
                             "is logged and counted, never fatal); empty = stdout only", metavar="FILE", group=EVENTS)
    webhook: str = option("", "also POST each event as JSON to this http(s) URL (in the background, at most 5 s a "
                              "POST and 100 events waiting; failures are logged and counted, never fatal); empty = "
                              "none", metavar="URL", group=EVENTS)
    hold: float = option(2.0, "seconds a new label must last before a 'label' event reports the change, so that one "
                              "noisy frame does not alert (hysteresis)", ge=0, metavar="SECONDS", group=EVENTS)
    sad_seconds: float = option(10.0, "a 'sad_alert' event when a face's label stays sad this many seconds (once per "
                                      "sad spell); 0 = never", ge=0, metavar="SECONDS", group=EVENTS)
    lost_seconds: float = option(3.0, "a 'face_lost' event when a face has not been seen for this many seconds "
                                      "(with --hidden-seconds: and the scene where it was has been still that long)",
                                 gt=0, metavar="SECONDS", group=EVENTS)
    asleep_seconds: float = option(30.0, "an 'asleep' event when a face's eyes stay shut this many seconds, 'awake' when "
                                         "they then stay open --hold seconds (eye openness from the face landmarks; "
                                         "the events and the 'eyes' field need them); 0 = do not measure the eyes",
                                   ge=0, metavar="SECONDS", group=EVENTS)
    hidden_seconds: float = option(5.0, "a 'face_hidden' alert when a face has not been found for this many seconds "
                                        "while the frame keeps changing where it was (someone is there: the face "
                                        "covered or turned away), unlike 'face_lost' (the scene is still); 0 = off",
                                   ge=0, metavar="SECONDS", group=EVENTS)
    snapshots: str = option("", "save the frame of each alert (sad_alert, face_hidden, asleep, awake) as a JPEG in this "
                                "folder, named in the event; checked at start; empty = no picture is ever stored",
                            metavar="DIR", group=EVENTS)
    snapshot_keep: int = option(100, "keep only the newest this many snapshots in --snapshots (older ones are deleted)",
                                ge=1, metavar="N", group=EVENTS)
    mqtt: str = option("", "also publish to an MQTT broker (e.g. Home Assistant's): mqtt://[user:password@]host:port/topic"
                           " gets each event on TOPIC/events, the faces' state retained on TOPIC/state and online/"
                           "offline on TOPIC/availability; a broker that is down is retried with back-off, never "
                           "fatal; empty = none", metavar="URL", group=EVENTS)
    ha_discovery: str | None = option(None, "with --mqtt, announce the monitor to Home Assistant (MQTT discovery): one "
                                            "device named --name with sensors for the affect, crying, asleep, face "
                                            "hidden and face seen (and the last alert's picture with --snapshots), "
                                            "created by Home Assistant itself; --ha-discovery alone uses Home "
                                            "Assistant's default prefix 'homeassistant', --ha-discovery PREFIX another",
                                      metavar="PREFIX", bare="homeassistant", group=EVENTS)
    ha_discovery_remove: bool = option(False, "remove the monitor's entities from Home Assistant (empty retained "
                                              "discovery configs for --name under --ha-discovery's prefix) and stop, "
                                              "without watching", group=EVENTS)
    name: str = option("babyface", "the monitor's name: the device Home Assistant shows (--ha-discovery); letters, "
                                   "digits, spaces, - and _", metavar="TEXT", group=EVENTS)
    video: VideoOptions = video_option()
    smooth: int = option(15, SMOOTH_HELP, ge=1, group=VIDEO)
    infant_only: bool = option(False, "raise no event for faces the run's infant-vs-adult model (a run trained with "
                                      "--adults) takes for adults', e.g. a parent in frame; off by default because that "
                                      "model was unreliable on infants unlike its training sources (docs/coding.md)",
                               group=EVENTS)
    faces: FaceDetection = faces_option()
    reconnect: float = option(30.0, "when a camera or stream stops delivering frames, retry with a doubling wait up "
                                    "to this many seconds between tries, forever; 0 = stop instead (a video file "
                                    "always stops at its end)", ge=0, metavar="SECONDS", group=SOURCE)
    open_tries: int = option(5, "how many times to try opening a camera or stream that has not opened yet (with the "
                                "waits of --reconnect in between) before stopping with an error, e.g. for a camera "
                                "index that does not exist; once it has opened, a drop is retried forever", ge=1,
                             metavar="N", group=SOURCE)
    max_seconds: float = option(0.0, "stop after this many seconds of wall time, even while waiting for a camera or "
                                     "stream; 0 = run until Ctrl-C (or the end of a video file)", ge=0,
                                metavar="SECONDS", group=SOURCE)
    min_confidence: float = option(0.0, MIN_CONFIDENCE_HELP, ge=0, le=1, group=RUNTIME)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    precision: Precision = precision_option()


class EnsembleConfig(ConfigModel):
    """``babyface ensemble``: runs combined into one model that averages their calibrated probabilities."""

    runs: list[str] = option(description="two or more run folders with the same classes", default_factory=list,
                             positional="+")
    out: str = option("", "the ensemble's folder, usable wherever a RUN is (required)", metavar="DIR")
    overwrite: bool = option(False, "write into a --out folder that already holds an ensemble")


class CompareConfig(ConfigModel):
    """``babyface compare``: evaluated runs side by side, with McNemar's test on the same test set."""

    runs: list[str] = option(description="two or more run folders, each evaluated with 'babyface evaluate'",
                             default_factory=list, positional="+")
    output: str = option("", "also write the comparison to this JSON file; empty = print only", metavar="FILE")
    group_by: str = option("", "which test images belong together (one infant, one video), for a paired test that "
                               "resamples whole groups beside McNemar's: a --manifest column or 'near-duplicates'; "
                               "empty = the groups 'evaluate --group-by' recorded in the runs' predictions.csv, if any",
                           metavar="COLUMN", group=STATISTICS)
    manifest: str = option("", GROUP_MANIFEST_HELP, metavar="CSV", group=STATISTICS)
    bootstrap: int = option(1000, "resamples of the paired group bootstrap (at least 100)", ge=100, group=STATISTICS)
    seed: int = option(0, "random seed of the paired group bootstrap", group=STATISTICS)
