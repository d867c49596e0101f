"""Person tracking: link per-frame poses into tracks, then pack tracks into PoseC3D person slots."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from posec3d.pose.geometry import NUM_KEYPOINTS, box_iou, keypoint_distance


@dataclass
class Track:
    """One person over time: frame index -> (keypoints, scores)."""
    track_id: int
    frames: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    last_box: np.ndarray | None = None
    last_seen: int = -1

    @property
    def weight(self) -> float:
        """How long and how confidently the person is present: the sum of mean scores."""
        return float(sum(scores.mean() for _, scores in self.frames.values()))

    def add(self, t: int, keypoints: np.ndarray, scores: np.ndarray, box: np.ndarray) -> None:
        self.frames[t] = (keypoints, scores)
        self.last_box = box
        self.last_seen = t

    def last_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.frames[self.last_seen]


class PoseTracker:
    """Hungarian assignment of each frame's poses to tracks; causal (each frame sees only the past).

    Per frame, in order:

    1. Duplicates are merged: a pose whose box overlaps a more confident pose of the same frame by
       ``duplicate_iou`` or more is the same person found twice (MediaPipe's second pass does
       this: ta_chi.mp4 frame 170, IoU 0.67). It gets that pose's track id and is not stored. On
       the shared clips duplicates overlap by 0.55-0.78, two real people hugging by at most 0.44.
    2. Live tracks (seen within ``max_age`` frames) are matched. The cost of pairing a track with
       a detection is ``(1 - IoU) + d / s`` where ``d`` is the mean distance between their
       confident keypoints and ``s`` the size (longer side) of the track's last box. A pair is
       allowed only if the boxes overlap by ``min_iou`` or ``d / s`` is below ``max_distance``.
    3. Lost tracks (unseen for longer, up to ``max_lost_age`` frames; None = any) are matched to
       the detections left, with the same rule: a person who was missed for a while and comes
       back where they left keeps their track instead of starting a new one.
    4. Detections still unmatched start new tracks.

    Tracks whose weight (summed mean keypoint score) is below ``min_relative_weight`` of the
    heaviest track are dropped when slots are filled: they are flickering false detections
    (a chair or a shadow found in a few scattered frames) or people passing through briefly.
    """

    def __init__(self, max_age: int = 30, min_iou: float = 0.1, max_distance: float = 0.5,
                 min_relative_weight: float = 0.1, duplicate_iou: float = 0.5,
                 max_lost_age: int | None = None) -> None:
        self.max_age = max_age
        self.min_relative_weight = min_relative_weight
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.duplicate_iou = duplicate_iou
        self.max_lost_age = max_lost_age
        self.tracks: list[Track] = []
        self.num_frames = 0

    def update(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray) -> list[int]:
        """Add one frame's poses; return the track id given to each (duplicates share one)."""
        t = self.num_frames
        self.num_frames += 1
        n = len(keypoints)
        duplicate_of = self._duplicates(scores, boxes)
        kept = [i for i in range(n) if duplicate_of[i] is None]
        assigned: list[int | None] = [None] * n
        live = [tr for tr in self.tracks if t - tr.last_seen <= self.max_age]
        lost = [tr for tr in self.tracks if t - tr.last_seen > self.max_age
                and (self.max_lost_age is None or t - tr.last_seen <= self.max_lost_age)]
        for candidates in (live, lost):
            todo = [i for i in kept if assigned[i] is None]
            for r, c in self._match(candidates, keypoints[todo], scores[todo], boxes[todo]):
                assigned[todo[c]] = candidates[r].track_id
        for i in kept:
            if assigned[i] is None:
                self.tracks.append(Track(len(self.tracks)))
                assigned[i] = self.tracks[-1].track_id
            self.tracks[assigned[i]].add(t, keypoints[i], scores[i], boxes[i])
        for i in range(n):
            if duplicate_of[i] is not None:
                assigned[i] = assigned[duplicate_of[i]]
        return assigned  # type: ignore[return-value]

    def _duplicates(self, scores: np.ndarray, boxes: np.ndarray) -> list[int | None]:
        """For each pose, the more confident pose of this frame it duplicates, or None."""
        duplicate_of: list[int | None] = [None] * len(boxes)
        if len(boxes) < 2:
            return duplicate_of
        iou = box_iou(boxes, boxes)
        order = np.argsort(-scores.mean(-1), kind="stable")
        kept: list[int] = []
        for i in order:
            twin = next((k for k in kept if iou[i, k] >= self.duplicate_iou), None)
            if twin is None:
                kept.append(int(i))
            else:
                duplicate_of[int(i)] = twin
        return duplicate_of

    def _match(self, tracks: list[Track], keypoints: np.ndarray, scores: np.ndarray,
               boxes: np.ndarray) -> list[tuple[int, int]]:
        """Allowed (track row, detection column) pairs of the cheapest assignment."""
        if not tracks or not len(keypoints):
            return []
        track_kp = np.stack([tr.last_pose()[0] for tr in tracks])
        track_sc = np.stack([tr.last_pose()[1] for tr in tracks])
        track_box = np.stack([tr.last_box for tr in tracks])
        iou = box_iou(track_box, boxes)
        size = np.maximum((track_box[:, 2:] - track_box[:, :2]).max(-1), 1.0)
        dist = keypoint_distance(track_kp, track_sc, keypoints, scores) / size[:, None]
        allowed = (iou >= self.min_iou) | (dist < self.max_distance)
        cost = (1 - iou) + np.minimum(dist, 10.0)
        cost = np.where(allowed, cost, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]

    def slots(self, max_persons: int) -> list[list[Track]]:
        """Pack tracks into at most ``max_persons`` slots, the main person first.

        Tracks are taken by decreasing weight (too light ones dropped, see the class); each joins the first slot whose tracks do not
        share a frame with it (so a person lost and found again, or a person replacing one who
        left, reuses a slot), or opens a new slot while fewer than ``max_persons`` exist.
        Tracks that fit nowhere are dropped. Slots are then ordered by total weight.
        """
        slots: list[tuple[set[int], list[Track]]] = []
        ranked = sorted(self.tracks, key=lambda tr: tr.weight, reverse=True)
        if ranked:
            floor = self.min_relative_weight * ranked[0].weight
            ranked = [tr for tr in ranked if tr.weight >= floor]
        for track in ranked:
            frames = set(track.frames)
            for used, members in slots:
                if not used & frames:
                    used |= frames
                    members.append(track)
                    break
            else:
                if len(slots) < max_persons:
                    slots.append((set(frames), [track]))
        ordered = sorted((members for _, members in slots), key=lambda m: sum(tr.weight for tr in m),
                         reverse=True)
        return ordered

    def to_arrays(self, max_persons: int) -> tuple[np.ndarray, np.ndarray]:
        """``keypoint (M, T, 17, 2)`` and ``keypoint_score (M, T, 17)``, float32, M >= 1.

        Frames where a slot has nobody are zeros (PoseC3D's convention for a missing person).
        """
        slots = self.slots(max_persons)
        m, t = max(1, len(slots)), self.num_frames
        keypoint = np.zeros((m, t, NUM_KEYPOINTS, 2), np.float32)
        score = np.zeros((m, t, NUM_KEYPOINTS), np.float32)
        for s, members in enumerate(slots):
            for track in members:
                for f, (kp, sc) in track.frames.items():
                    keypoint[s, f] = kp
                    score[s, f] = sc
        return keypoint, score
