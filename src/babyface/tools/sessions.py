"""Scripted sessions to try video coding without a lab: ``babyface synth --video``.

Each session is an MP4 of a synthetic infant face in close-up whose expression follows a known timeline of codes
(positive, neutral, negative, and uncodable while the infant turns away), drifting gently, with a smaller adult face
(synth's adult faces) in a corner that smiles and calms on its own timeline (a parent in frame). The true codes are written beside it as
CSV (video, start, end, code) and ELAN, and every session's phases (face-to-face, still-face, reunion: the still-face
paradigm's episodes) into phases.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babyface.outputs import atomic_path, prepare_output_dir, write_csv
from babyface.progress import progress_bar
from babyface.tools.synthetic import render_face
from babyface.video.coding import UNCODABLE, CodedVideo, Epoch, tier_name
from babyface.video.coding_files import Provenance, write_eaf
from babyface.video.episodes import PHASE_COLUMNS, Phase

PHASES = (("face-to-face", 0.4), ("still-face", 0.3), ("reunion", 0.3))
# which codes each phase draws from, and how likely: the still-face episode brings distress and looking away
PHASE_CODES = {"face-to-face": {"positive": 0.45, "neutral": 0.4, "negative": 0.05, UNCODABLE: 0.1},
               "still-face": {"positive": 0.05, "neutral": 0.35, "negative": 0.4, UNCODABLE: 0.2},
               "reunion": {"positive": 0.45, "neutral": 0.35, "negative": 0.1, UNCODABLE: 0.1}}
EXPRESSION_OF = {"positive": "happy", "neutral": "neutral", "negative": "sad"}
TRUTH_TIER = tier_name("infant")
PARENT_SEED = 10_001  # one parent for every session: a drawn adult face BlazeFace finds in either mood (many are missed)


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    code: str


@dataclass(frozen=True)
class Session:
    video: Path
    segments: list[Segment]
    phases: list[Phase]


def session_script(seconds: int, rng: np.random.Generator) -> tuple[list[Segment], list[Phase]]:
    """Whole-second segments of 2-5 s with codes drawn per phase; consecutive segments differ in code."""
    phases, start = [], 0
    for i, (name, share) in enumerate(PHASES):
        end = seconds if i == len(PHASES) - 1 else start + max(2, round(seconds * share))
        phases.append(Phase(name, float(start), float(end)))
        start = end
    segments: list[Segment] = []
    for phase in phases:
        t = int(phase.start)
        while t < phase.end:
            length = min(int(rng.integers(2, 6)), int(phase.end) - t)
            codes = [c for c in PHASE_CODES[phase.name] if not segments or c != segments[-1].code]
            weights = np.array([PHASE_CODES[phase.name][c] for c in codes])
            segments.append(Segment(t, t + length, str(rng.choice(codes, p=weights / weights.sum()))))
            t += length
    return segments, phases


def _sprites(side: int, seed: int, age: str = "infant") -> dict[str, np.ndarray]:
    """One person's face (same appearance) in each expression, as BGR squares, and the back of the head."""
    sprites = {}
    for code, label in EXPRESSION_OF.items():
        image, params = render_face(label, np.random.default_rng(seed), size=side, grayscale=False, style="photo",
                                    overrides=_clear_expression(label, age), age=age)
        sprites[code] = np.asarray(image)[:, :, ::-1].copy()
    backdrop = sprites["neutral"][2, 2].astype(int)
    head = np.empty_like(sprites["neutral"])
    head[:] = backdrop
    yy, xx = np.mgrid[:side, :side]
    inside = ((xx - side / 2) / (side * 0.36)) ** 2 + ((yy - side / 2) / (side * 0.42)) ** 2 <= 1
    head[inside] = (40, 62, 98)  # dark hair: the infant seen from behind
    sprites[UNCODABLE] = head
    return sprites


def _clear_expression(label: str, age: str = "infant") -> dict:
    if age == "adult":  # the parent talks (lips apart) when not smiling: BlazeFace finds these drawn faces far more often
        return {"mouth_curve": 0.9 if label == "happy" else 0.1, "mouth_open": 0.5 if label == "happy" else 0.35,
                "brow_angle": 0.0, "eye_open": 0.6 if label == "happy" else 0.8}
    return {"happy": {"mouth_curve": 0.9, "mouth_open": 0.5, "brow_angle": -4.0, "eye_open": 0.5},
            "neutral": {"mouth_curve": 0.0, "mouth_open": 0.0, "brow_angle": 0.0, "eye_open": 0.9},
            "sad": {"mouth_curve": -0.8, "mouth_open": 0.6, "brow_angle": 20.0, "eye_open": 0.45, "tears": True}}[label]


def write_session_video(path: Path, segments: list[Segment], size: tuple[int, int] = (640, 480), fps: float = 30.0,
                        seed: int = 0, adult: bool = True) -> Path:
    """The MP4 of one session: the infant acting out ``segments``, a parent's face in a corner."""
    import cv2

    width, height = size
    side = int(min(size) * 0.5)
    infant = _sprites(side, seed)
    adult_side = int(side * 0.7)  # about half the infant's area: --face largest often codes it when the infant turns away
    parent = _sprites(adult_side, PARENT_SEED, age="adult")
    frames = int(round(segments[-1].end * fps))
    with atomic_path(path, keep_suffix=True) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        try:
            for index in range(frames):
                t = index / fps
                code = next(s.code for s in segments if s.start <= t < s.end)
                frame = np.full((height, width, 3), (150, 168, 190), np.uint8)
                x = int(width * 0.42 - side / 2 + 0.06 * width * np.sin(t / 1.7))
                y = int(height * 0.55 - side / 2 + 0.04 * height * np.sin(t / 1.1))
                frame[y:y + side, x:x + side] = infant[code]
                if adult:
                    mood = "positive" if int(t / 3) % 2 == 0 else "neutral"  # the parent smiles every other 3 s
                    frame[8:8 + adult_side, width - adult_side - 8:width - 8] = parent[mood]
                writer.write(frame)
        finally:
            writer.release()
    return path


def truth_video(session: Session) -> CodedVideo:
    epochs = [Epoch(float(t), float(t + 1), s.code) for s in session.segments for t in range(s.start, s.end)]
    return CodedVideo(session.video.name, float(session.segments[-1].end), 1.0, [], {TRUTH_TIER: epochs})


def write_sessions(out: str | Path, videos: int = 3, seconds: int = 30, size: tuple[int, int] = (640, 480),
                   fps: float = 30.0, seed: int = 0, adult: bool = True, overwrite: bool = False,
                   progress: bool = True) -> list[Session]:
    """``videos`` scripted sessions of ``seconds`` each into ``out``: session_NN.mp4, its true codes as
    session_NN.truth.csv and .eaf, and phases.csv for all of them."""
    out = prepare_output_dir(out, overwrite=overwrite)
    sessions, phase_rows = [], []
    for number in progress_bar(range(1, videos + 1), progress, desc="sessions", unit="video"):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(number,)))
        segments, phases = session_script(max(6, int(seconds)), rng)
        video = write_session_video(out / f"session_{number:02d}.mp4", segments, size, fps, seed * 1000 + number, adult)
        session = Session(video, segments, phases)
        write_csv(out / f"{video.stem}.truth.csv", ["video", "start", "end", "code"],
                  [[video.name, s.start, s.end, s.code] for s in segments])
        write_eaf(out / f"{video.stem}.truth.eaf", truth_video(session), video,
                  Provenance("synthetic truth", f"babyface synth --video, seed {seed}"), phases)
        phase_rows += [[video.name, p.name, f"{p.start:g}", f"{p.end:g}"] for p in phases]
        sessions.append(session)
    write_csv(out / "phases.csv", PHASE_COLUMNS, phase_rows)
    return sessions


__all__ = ["PHASES", "TRUTH_TIER", "Segment", "Session", "session_script", "truth_video", "write_session_video",
           "write_sessions"]
