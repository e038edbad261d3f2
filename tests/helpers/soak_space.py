"""Soak the Space: `space/app.py` run from its own folder (a tiny random checkpoint, a 16-image procedural gallery as
Parquet), 8 concurrent clients sending mixed traffic for a while (text search with and without ITM re-ranking,
attribute recognition, an upload indexed then searched, a video indexed then searched), every returned image read
back whole. Prints a JSON report: requests and failures per endpoint, p50/p95 latency per endpoint, the server's
resident memory after the warm-up and at the end.

    python tests/helpers/soak_space.py --seconds 300 --workdir /tmp/soak
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `helpers`, when run as a script

from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["a man in a red shirt", "a woman with long hair and a yellow dress", "a person with a black bag",
           "someone in blue trousers and white shoes"]


def prepare(workdir):
    """The checkpoint, the gallery, an upload and a video in `workdir`; returns the environment the app needs."""
    import datasets

    from aptm.hub import add_pipelines
    from datasets_scripts import load_aptm_dataset
    from datasets_scripts.publish import to_parquet
    from helpers.footage import pedestrian_video, save_tiny_checkpoint
    from helpers.images import person_image

    add_pipelines(save_tiny_checkpoint(workdir / "checkpoint"))
    data = load_aptm_dataset("procedural", data_dir=workdir / "data", num_identities=40, views_per_identity=2, seed=0)
    to_parquet(datasets.DatasetDict({"test": data["test_gallery"]}), workdir / "gallery")
    for seed in range(3):
        person_image(seed).save(workdir / f"upload-{seed}.png")
    pedestrian_video(workdir / "walk.avi")
    return {"APTM_MODEL": str(workdir / "checkpoint"), "APTM_GALLERY": str(workdir / "gallery"),
            "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}


def resident_mib(pid):
    """The process's resident memory in MiB (`VmRSS`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def read_back(result):
    """Decode every image file a gallery result names (raises on a truncated or empty file); returns how many."""
    for item in result:
        with Image.open(item["image"]) as image:
            image.load()
            if not np.asarray(image).std() > 0:
                raise ValueError(f"{item['image']} is blank")
    return len(result)


def read_back_footage(result):
    """`read_back` of a footage search's people, and its timeline decoded whole; returns how many people."""
    people, timeline = result
    with Image.open(timeline) as image:
        image.load()
    return read_back(people)


def client_loop(url, workdir, number, stop, record):
    """One client's mixed traffic until `stop` is set; each call's endpoint, seconds and error (or None) recorded."""
    import gradio_client
    from gradio_client import handle_file

    rng = random.Random(number)
    client = gradio_client.Client(url, verbose=False, download_files=str(workdir / f"downloads-{number}"))
    uploads = [handle_file(str(workdir / f"upload-{seed}.png")) for seed in range(3)]
    indexed = {"uploads": False, "video": False}

    def call(endpoint, *args, check=None):
        start = time.perf_counter()
        try:
            result = client.predict(*args, api_name=endpoint)
            if check:
                check(result)
            error = None
        except Exception as failure:  # noqa: BLE001  (recorded, the soak goes on)
            error = f"{type(failure).__name__}: {failure}"[:300]
        record(endpoint, time.perf_counter() - start, error)
        return error is None

    while not stop.is_set():
        draw = rng.random()
        if draw < 0.5:
            call("/search", rng.choice(QUERIES), 10, rng.random() < 0.5, check=read_back)
        elif draw < 0.65:
            call("/attributes", uploads[rng.randrange(3)], rng.random() < 0.5)
        elif draw < 0.85:
            if not indexed["uploads"]:
                indexed["uploads"] = call("/index_uploads", uploads)
            else:
                call("/search_uploads", rng.choice(QUERIES), 3, check=read_back)
        else:
            if not indexed["video"]:
                indexed["video"] = call("/index_video", handle_file(str(workdir / "walk.avi")), 10)
            else:
                call("/search_footage", rng.choice(QUERIES), None, 0.5, 5, "walk.avi", check=read_back_footage)


def percentile(values, q):
    return round(float(np.percentile(values, q)), 3) if values else None


def soak(workdir, seconds, clients=8, warmup=60):
    """Run the app and the clients; returns the report."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    environment = prepare(workdir)
    port = 7860 + os.getpid() % 1000
    log = open(workdir / "app.log", "w")
    server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO / "space", stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **environment, "GRADIO_SERVER_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start: {(workdir / 'app.log').read_text()[-2000:]}")
                time.sleep(1)
        calls, lock, stop = [], threading.Lock(), threading.Event()
        started = time.monotonic()

        def record(endpoint, elapsed, error):
            with lock:
                calls.append((time.monotonic() - started, endpoint, elapsed, error))

        threads = [threading.Thread(target=client_loop, args=(url, workdir, n, stop, record)) for n in range(clients)]
        for thread in threads:
            thread.start()
        memory = []
        while time.monotonic() - started < seconds:
            memory.append((time.monotonic() - started, resident_mib(server.pid)))
            time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()
        memory.append((time.monotonic() - started, resident_mib(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    after_warmup = [mib for at, mib in memory if at >= min(warmup, seconds / 2)]
    report = {"seconds": seconds, "clients": clients, "requests": len(calls),
              "failed": sum(error is not None for *_, error in calls), "endpoints": {},
              "resident_mib": {"after_warmup": round(after_warmup[0], 1), "end": round(memory[-1][1], 1),
                               "max": round(max(mib for _, mib in memory), 1),
                               "growth_after_warmup": round(memory[-1][1] - after_warmup[0], 1)},
              "errors": sorted({error for *_, error in calls if error})[:10]}
    by_endpoint = defaultdict(list)
    for _, endpoint, elapsed, error in calls:
        by_endpoint[endpoint].append((elapsed, error))
    for endpoint, results in sorted(by_endpoint.items()):
        latencies = [elapsed for elapsed, error in results if error is None]
        report["endpoints"][endpoint] = {"requests": len(results), "failed": len(results) - len(latencies),
                                         "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95)}
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(soak(args.workdir, args.seconds, args.clients), indent=1))


if __name__ == "__main__":
    main()
