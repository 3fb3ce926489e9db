"""``babyface code``: a corpus of videos coded one by one (or by several worker processes), resumable.

Per video (``code_one``, a function of the model, the video and the options, so that it can run anywhere) a folder
OUT/<video name>/ gets codes.csv, <name>.eaf, <name>.boris, <name>.opf and timeline.csv, then coding.json, written
last, which records the model and options the codes came from: a rerun skips a video whose coding.json matches, and
codes again one whose folder has no coding.json (an interrupted video). The corpus gets summary.csv (one row per video,
tier and phase; a ``failed`` row for a video that cannot be read) and report.html.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple, Sequence

from babyface.bundle import bundle_sha256, read_metadata
from babyface.config import VideoOptions
from babyface.config.coding import CodeConfig
from babyface.data.inputs import expand_inputs
from babyface.errors import BabyfaceError, DataError, OutputExistsError
from babyface.inference.classifier import Classifier
from babyface.outputs import write_csv, write_json
from babyface.progress import progress_bar
from babyface.run import META_FILE, RunFolder
from babyface.video.analysis import VideoAnalyser, VideoRows, is_video_file, open_video, read_video_rows, write_timeline
from babyface.video.coding import INFANT, CodedVideo, Epoch, check_epoch_has_frames, code_epochs, parse_code_map
from babyface.video.coding_files import Provenance, read_codes_epochs, write_boris, write_codes_csv, write_eaf, write_opf
from babyface.video.episodes import (
    SUMMARY_HEADER,
    EpisodeSummary,
    Phase,
    phases_for,
    read_phases,
    summarise_video,
    unmatched_phase_videos,
)

if TYPE_CHECKING:
    from babyface.video.agreement import AgreementReport

log = logging.getLogger("babyface")

RECORD = "coding.json"
CHUNKS_PER_BATCH = 16  # detection rounds whose faces are classified together: 3x fewer seconds in the model here
CODED, SKIPPED, FAILED = "coded", "skipped", "failed"


@dataclass
class VideoResult:
    """What became of one video: coded now, skipped (coded before with the same model and options) or failed."""

    video: Path
    folder: str
    status: str
    error: str = ""
    duration: float = 0.0
    seconds: float = 0.0  # wall-clock time of the coding
    summaries: list[EpisodeSummary] = field(default_factory=list)
    tiers: dict[str, list[Epoch]] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)


@dataclass
class CorpusResult:
    out: Path
    videos: list[VideoResult]
    agreement: "AgreementReport | None" = None  # with --reference

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == FAILED]

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)


# ---------------------------------------------------------------- inputs

def collect_videos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Video files given, and the video files in folders given (recursively, sorted); a missing input is an error,
    a file given by name is taken whatever its extension (a non-video fails as that video, the corpus goes on)."""
    return expand_inputs(inputs, is_video_file, "video files (.mp4, .mov, .avi, .mkv, ...)")


def folder_names(videos: Sequence[Path]) -> dict[Path, str]:
    """Each video's output folder name: its file name without extension, made unique (two videos of one name in
    different folders) by a short hash of its full path, so that the name does not depend on the other inputs."""
    stems: dict[str, int] = {}
    for video in videos:
        stems[video.stem] = stems.get(video.stem, 0) + 1
    return {v: v.stem if stems[v.stem] == 1 else f"{v.stem}-{hashlib.sha1(str(v.resolve()).encode()).hexdigest()[:8]}"
            for v in videos}


# ---------------------------------------------------------------- the record of a coded video

def options_record(config: CodeConfig, code_map: dict[str, str], phases: Sequence[Phase]) -> dict:
    """The options that change a video's codes (not where they go, nor how fast)."""
    return {"epoch": config.epoch, "fps": config.fps, "face": config.face, "min_confidence": config.min_confidence,
            "code_map": code_map, "tta": config.tta, "backend": config.backend, "precision": config.precision,
            "faces": config.faces.model_dump(), "phases": [[p.name, p.start, p.end] for p in phases]}


def video_record(video: Path) -> dict:
    stat = video.stat()
    return {"path": str(video.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_coded(folder: Path, key: dict) -> bool:
    """True when ``folder`` holds a finished coding for ``key`` (the model, options and video file); a finished
    coding for another key is refused unless overwritten."""
    record = _read_record(folder)
    return record is not None and {k: record.get(k) for k in key} == key


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- one video

class VideoJob(NamedTuple):
    video: Path
    folder: Path
    phases: tuple[Phase, ...]


@dataclass
class VideoCoding:
    """What coding one video computes, wherever it runs (this process, a worker process, a Ray node): the codes and
    the per-frame rows. The driver writes the files, so that a worker elsewhere needs no access to the output."""

    coded: CodedVideo
    read: VideoRows


def sampling_interval(video_fps: float, fps: float) -> int:
    """Every how many frames one is used: ``fps`` used frames a second (0: every frame)."""
    return 1 if fps <= 0 or fps >= video_fps else max(1, round(video_fps / fps))


def code_video(classifier: Classifier, config: CodeConfig, video: Path, code_map: dict[str, str],
               progress: bool = False) -> VideoCoding:
    """The per-video work, a function of the model, the video and the options; raises BabyfaceError for a video
    that cannot be coded."""
    capture, info = open_video(video)
    every = sampling_interval(info.fps, config.fps)
    try:
        check_epoch_has_frames(config.epoch, info.fps / every, str(video))
    except BabyfaceError:
        capture.release()
        raise

    analyser = VideoAnalyser(classifier, config.faces, VideoOptions(every=every), info.fps, smooth=1)
    read = read_video_rows(analyser, capture, info, video, every, progress, group_chunks=CHUNKS_PER_BATCH)
    if not read.used:
        raise DataError(f"{video}: no frame could be decoded; check that the file is a complete video (re-encode it with ffmpeg)")
    tiers = code_epochs(read.rows, read.times, read.duration, config.epoch, classifier.classes, code_map, config.face,
                        config.min_confidence)
    return VideoCoding(CodedVideo(video.name, read.duration, config.epoch, list(classifier.classes), tiers), read)


def try_code_video(classifier: Classifier, config: CodeConfig, video: Path, code_map: dict[str, str],
                   progress: bool = False) -> VideoCoding | str:
    """``code_video``, or the one-line reason the video cannot be coded."""
    try:
        return code_video(classifier, config, video, code_map, progress)
    except BabyfaceError as exc:
        return str(exc)


def write_coding(config: CodeConfig, job: VideoJob, coding: VideoCoding, code_map: dict[str, str]) -> VideoResult:
    """A video's files, coding.json last: until it is written again the folder counts as unfinished."""
    folder, coded, read = job.folder, coding.coded, coding.read
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).unlink(missing_ok=True)
    provenance = Provenance(str(config.run), json.dumps(options_record(config, code_map, job.phases), sort_keys=True))
    write_codes_csv(folder / "codes.csv", coded)
    write_eaf(folder / f"{folder.name}.eaf", coded, job.video, provenance, job.phases)
    write_boris(folder / f"{folder.name}.boris", coded, job.video, provenance, read.info.fps)
    write_opf(folder / f"{folder.name}.opf", coded, job.video, read.info.fps)
    write_timeline(folder / "timeline.csv", read.rows, coded.classes)
    write_json(folder / RECORD, {**coding_key(config, job.video, code_map, job.phases), "duration": coded.duration,
                                 "frames_used": len(read.used), "coding_seconds": round(read.seconds, 3),
                                 "tiers": list(coded.tiers)})
    return _result(job, CODED, coded.tiers, coded.duration, read.seconds)


def skipped_result(job: VideoJob) -> VideoResult:
    record = _read_record(job.folder) or {}
    return _result(job, SKIPPED, read_codes_epochs(job.folder / "codes.csv"), float(record.get("duration", 0.0)))


def _result(job: VideoJob, status: str, tiers: dict[str, list[Epoch]], duration: float, seconds: float = 0.0) -> VideoResult:
    return VideoResult(job.video, job.folder.name, status, duration=duration, seconds=seconds, tiers=tiers,
                       summaries=summarise_video(job.video.name, tiers, duration, job.phases), phases=list(job.phases))


def coding_key(config: CodeConfig, video: Path, code_map: dict[str, str], phases: Sequence[Phase]) -> dict:
    return {"model": bundle_sha256(config.run), "options": options_record(config, code_map, phases),
            "video": video_record(video)}


# ---------------------------------------------------------------- the corpus

def make_classifier(config: CodeConfig) -> Classifier:
    return Classifier(config.run, device=config.device, batch_size=config.batch_size, backend=config.backend,
                      tta=config.tta, precision=config.precision)


Runner = Callable[[CodeConfig, list[VideoJob], dict[str, str]], Iterator[tuple[VideoJob, "VideoCoding | str"]]]


def code_corpus(config: CodeConfig) -> CorpusResult:
    """Code every video of ``config.inputs`` into ``config.out`` (default RUN/coded) and write the corpus summary
    and report. Videos already coded with the same model and options are skipped; the others are coded here, in
    worker processes (--workers) or on a Ray cluster (--ray), and their files written here as each one finishes."""
    videos = collect_videos(config.inputs)
    out = Path(config.out or Path(config.run) / "coded")
    phases = read_phases(config.phases) if config.phases else {}
    unknown = unmatched_phase_videos(phases, videos)
    if unknown:
        raise DataError(f"{config.phases}: phases name video(s) {', '.join(unknown)} that are not among the inputs; "
                        "name each video by its file name")
    meta = read_metadata(config.run)  # the model itself is loaded where it codes: here, or once in each worker
    check_face(config.face, config.run)
    code_map = parse_code_map(config.code_map, meta.decides_over)
    names = folder_names(videos)
    jobs = [VideoJob(video, out / names[video], tuple(phases_for(phases, video))) for video in videos]
    refuse_foreign_folders(config, jobs, code_map)
    done = {job: skipped_result(job) for job in jobs
            if not config.overwrite and is_coded(job.folder, coding_key(config, job.video, code_map, job.phases))}
    pending = [job for job in jobs if job not in done]
    runner = choose_runner(config, pending)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = runner(config, pending, code_map)
    for job, outcome in progress_bar(outcomes, config.progress, total=len(pending), desc="videos", unit="video"):
        done[job] = _failed(job, outcome) if isinstance(outcome, str) else write_coding(config, job, outcome, code_map)
    corpus = CorpusResult(out, [done[job] for job in jobs])
    write_summary(out / "summary.csv", corpus)
    from babyface.video.coding_report import write_report

    write_report(out / "report.html", corpus, config)
    if config.reference:
        corpus.agreement = agree_with_reference(config, out)
    return corpus


def agree_with_reference(config: CodeConfig, out: Path):
    """``code --reference``: the corpus's codes against a coder's, as ``babyface agree OUT --reference ...`` gives it,
    into OUT/agreement/ (replaced at every run: it follows the codes)."""
    from babyface.config.coding import AgreeConfig
    from babyface.video.agreement import agree

    return agree(AgreeConfig(codes=[str(out)], reference=config.reference, out=str(out / "agreement"), epoch=config.epoch,
                             reference_tier=config.reference_tier, map=config.reference_map, overwrite=True))


def _failed(job: VideoJob, error: str) -> VideoResult:
    log.warning(error)
    return VideoResult(job.video, job.folder.name, FAILED, error=error)


def choose_runner(config: CodeConfig, pending: list[VideoJob]) -> Runner:
    """Where the videos are coded; connecting to Ray happens here, before anything is written."""
    if config.ray is not None and pending:
        from babyface.video.on_ray import RayRunner

        return RayRunner.connect(config.ray, config.workers if config.workers > 1 else None)
    return code_in_workers if config.workers > 1 and len(pending) > 1 else code_here


def code_here(config: CodeConfig, jobs: list[VideoJob], code_map: dict[str, str]) -> Iterator[tuple[VideoJob, VideoCoding | str]]:
    classifier = make_classifier(config) if jobs else None
    for job in jobs:
        yield job, try_code_video(classifier, config, job.video, code_map, config.progress)


def check_face(face: str, run: str | os.PathLike) -> None:
    """--face infant needs the run's infant-vs-adult model (RUN/who/)."""
    if face == INFANT and not (RunFolder(run).who / META_FILE).is_file():
        raise BabyfaceError(f"--face infant: {run} has no infant-vs-adult model (RUN/who/); train the run with "
                            "--adults naming the adult sources, or code with --face largest")


def refuse_foreign_folders(config: CodeConfig, jobs, code_map: dict[str, str]) -> None:
    """A video folder finished with another model or other options is replaced only with --overwrite."""
    if config.overwrite:
        return
    for job in jobs:
        record = _read_record(job.folder)
        if record is not None and not is_coded(job.folder, coding_key(config, job.video, code_map, job.phases)):
            raise OutputExistsError(f"{job.folder}: holds codes made with another model, other options or another version "
                                    "of the video; pass --overwrite to code it again or choose another --out")


def write_summary(path: Path, corpus: CorpusResult) -> Path:
    header = ["status", *SUMMARY_HEADER, "error"]
    rows = []
    for result in corpus.videos:
        if result.status == FAILED:
            rows.append([FAILED, result.video.name, *[""] * (len(SUMMARY_HEADER) - 1), result.error])
        rows += [[result.status, *summary.cells(), ""] for summary in result.summaries]
    return write_csv(path, header, rows)


# ---------------------------------------------------------------- workers

_WORKER: dict = {}


def worker_classifier(config: CodeConfig) -> Classifier:
    """The model of a worker process (a local worker or a Ray worker), loaded once per process and options, with one
    thread: N processes of one thread each, since threads of several processes fight over the cores."""
    key = config.model_dump_json()
    if _WORKER.get("key") != key:
        import torch

        torch.set_num_threads(1)
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "threads;1"  # FFmpeg decodes in threads of its own otherwise
        from babyface.video.camera import _cv2

        _cv2().setNumThreads(1)
        _WORKER.update(key=key, classifier=make_classifier(config))
    return _WORKER["classifier"]


def code_in_worker(config: CodeConfig, video: Path, code_map: dict[str, str]) -> VideoCoding | str:
    return try_code_video(worker_classifier(config), config, video, code_map)


def code_in_workers(config: CodeConfig, jobs: list[VideoJob],
                    code_map: dict[str, str]) -> Iterator[tuple[VideoJob, VideoCoding | str]]:
    context = multiprocessing.get_context("spawn")  # a fork of a process that ran torch's thread pool can hang
    worker_config = config.replace(progress=False)
    with concurrent.futures.ProcessPoolExecutor(min(config.workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(code_in_worker, worker_config, job.video, code_map): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


__all__ = ["CODED", "FAILED", "RECORD", "SKIPPED", "CorpusResult", "VideoCoding", "VideoJob", "VideoResult", "code_corpus",
           "code_video", "collect_videos", "folder_names", "sampling_interval", "try_code_video", "worker_classifier"]
