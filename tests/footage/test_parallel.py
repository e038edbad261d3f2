"""Detection ahead of indexing (`map_ahead`): results in the stream's order, the workers really run at once and no
further ahead than asked, a worker's error comes at its item's turn, closing early stops the rest; OpenCV's HOG
detector gives the same people from several threads at once, each with its own descriptor."""

import threading
import time

import cv2
import numpy as np
import pytest

from aptm.footage import HOGPersonDetector
from aptm.footage.parallel import map_ahead


def test_results_come_in_order_whatever_finishes_first():
    def slow_first(item):
        time.sleep(0.05 if item == 0 else 0)
        return item * item

    for workers in (1, 3):
        assert list(map_ahead(slow_first, range(10), workers)) == [(i, i * i) for i in range(10)]


def test_workers_run_at_once():
    meeting = threading.Barrier(2, timeout=10)  # passed only when two calls are in flight together
    assert list(map_ahead(lambda item: meeting.wait() >= 0, range(4), workers=2)) == [(i, True) for i in range(4)]


def test_one_worker_runs_in_the_calling_thread():
    assert {name for _, name in map_ahead(lambda _: threading.current_thread().name, range(3), 1)} \
        == {threading.current_thread().name}


def test_workers_run_no_further_ahead_than_asked():
    read = []

    def stream():
        for item in range(20):
            read.append(item)
            yield item

    for item, _ in map_ahead(lambda item: item, stream(), workers=2, ahead=3):
        assert len(read) <= item + 1 + 3  # the item handed back and at most 3 beyond it


def test_an_error_comes_at_its_items_turn():
    def fail_on_three(item):
        if item == 3:
            raise RuntimeError("item 3")
        return item

    seen = []
    with pytest.raises(RuntimeError, match="item 3"):
        for item, _ in map_ahead(fail_on_three, range(10), workers=2):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_closing_early_cancels_the_items_not_started():
    started = []

    def record(item):
        started.append(item)
        time.sleep(0.01)
        return item

    results = map_ahead(record, range(1000), workers=2, ahead=8)
    assert next(results) == (0, 0)
    results.close()
    assert len(started) <= 10  # the first, those running and none of the queued ones after the close


@pytest.mark.parametrize("arguments, named", [({"workers": 0}, "workers"), ({"workers": 2, "ahead": 0}, "ahead")])
def test_bad_arguments_are_named(arguments, named):
    with pytest.raises(ValueError, match=f"{named} must be at least 1"):
        list(map_ahead(lambda item: item, range(3), **arguments))


def test_hog_detects_the_same_people_from_several_threads(walk):
    capture = cv2.VideoCapture(str(walk.path))
    frames = []
    while len(frames) < 6 and (read := capture.read())[0]:
        frames.append(np.ascontiguousarray(read[1][:, :, ::-1]))
    capture.release()
    detector = HOGPersonDetector(upscale=1.0)
    alone = [detector(frame) for frame in frames]
    assert sum(map(len, alone)) > 0
    together = [found for _, found in map_ahead(detector, frames * 2, workers=3)]
    assert together == alone * 2
    descriptors = {}
    threads = [threading.Thread(target=lambda n=n: descriptors.__setitem__(n, detector.hog)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert descriptors[0] is not descriptors[1] and detector.hog is detector.hog
