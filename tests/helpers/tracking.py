"""Tracking figures against known identities (the CLEAR-MOT identity switches and fragmentations, and IDF1 of Ristani
et al. 2016), for the few people of a generated video: per frame, true and tracked boxes are paired greedily at an
overlap of at least 0.5; IDF1 pairs whole true identities with whole tracks one to one, exactly (every pairing is
tried, so keep to a handful of tracks)."""

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from aptm.footage.tracking import box_overlaps

MATCH = 0.5


@dataclass
class TrackingFigures:
    """`identity_switches` (a person's matched track changes), `fragmentations` (a person's tracking stops and resumes
    later), `tracks_per_person` (distinct tracks that followed each person, averaged), `idf1`."""

    identity_switches: int
    fragmentations: int
    tracks_per_person: float
    idf1: float


def frame_pairs(truth, tracked):
    """Per frame, `{person: track}` of the true boxes `truth[frame] = {person: box}` paired greedily (best overlap
    first, at least `MATCH`) with the tracked boxes `tracked[frame] = {track: box}`."""
    pairs = {}
    for frame, people in truth.items():
        found = tracked.get(frame, {})
        pairs[frame] = {}
        if not people or not found:
            continue
        persons, tracks = list(people), list(found)
        overlap = box_overlaps([people[p] for p in persons], [found[t] for t in tracks])
        for flat in np.argsort(-overlap, axis=None, kind="stable"):
            i, j = np.unravel_index(flat, overlap.shape)
            if overlap[i, j] < MATCH:
                break
            if persons[i] not in pairs[frame] and tracks[j] not in pairs[frame].values():
                pairs[frame][persons[i]] = tracks[j]
    return pairs


def tracking_figures(truth, tracked):
    """`TrackingFigures` of tracked boxes against the true ones (both `{frame: {id: box}}`, over the same frames)."""
    frames = sorted(truth)
    pairs = frame_pairs(truth, tracked)
    persons = sorted({p for people in truth.values() for p in people})
    switches = fragmentations = 0
    followed = {p: set() for p in persons}
    for person in persons:
        last, gap = None, False
        for frame in frames:
            if person not in truth[frame]:
                continue
            track = pairs[frame].get(person)
            if track is None:
                gap = last is not None
                continue
            followed[person].add(track)
            switches += last is not None and track != last
            fragmentations += gap
            last, gap = track, False
    tracks = sorted({t for found in tracked.values() for t in found})
    if len(tracks) > 9:
        raise ValueError(f"{len(tracks)} tracks: too many to pair exactly with {len(persons)} people")
    shared = np.zeros((len(persons), len(tracks)))
    for frame in frames:
        for person, box in truth[frame].items():
            for t, track in enumerate(tracks):
                other = tracked.get(frame, {}).get(track)
                if other is not None and box_overlaps(box, other)[0, 0] >= MATCH:
                    shared[persons.index(person), t] += 1
    padded = np.pad(shared, ((0, 0), (0, max(0, len(persons) - len(tracks)))))
    best = max(sum(padded[i, j] for i, j in enumerate(choice))
               for choice in permutations(range(padded.shape[1]), len(persons)))
    true_boxes = sum(len(people) for people in truth.values())
    tracked_boxes = sum(len(tracked.get(frame, {})) for frame in frames)
    return TrackingFigures(switches, fragmentations, float(np.mean([len(followed[p]) for p in persons])),
                           2 * best / (true_boxes + tracked_boxes))
