"""Index folders (recursively), zip/tar archives, photos and videos of people for search: person crops are indexed
as they are, wide images and every Nth video frame go through a person detector, the people of a video are followed
from frame to frame into tracks (one per person; static ones flagged), and a few crops of each track are encoded and
stored with their provenance (file, archive member, frame, time stamp, box) and a thumbnail. Re-running adds only
what is new; a crash loses at most the batch in flight.

    python scripts/index_gallery.py my_videos/ photos.zip --model outputs/quickstart/checkpoint --out outputs/footage
    python scripts/index_gallery.py more_videos/ --out outputs/footage --frame-step 5
"""

import argparse
import logging

from tqdm.contrib.logging import logging_redirect_tqdm

from aptm.footage import FootageIndex, HOGPersonDetector


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="folder, zip/tar archive, image or video")
    parser.add_argument("--out", required=True, help="index folder (created, or added to)")
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: the index's own)")
    parser.add_argument("--frame-step", type=int, default=10, help="search every Nth video frame for people")
    parser.add_argument("--crop-aspect", type=float, default=1.5,
                        help="images at least this many times taller than wide are person crops, indexed as they are; "
                             "others go through the detector (inf: every image)")
    parser.add_argument("--upscale", type=float, default=1.5,
                        help="resize before detection: HOG finds people about 100/UPSCALE pixels tall or taller")
    parser.add_argument("--min-score", type=float, default=0.5, help="lowest HOG detection score kept")
    parser.add_argument("--min-width", type=int, default=24, help="smallest person crop width, pixels")
    parser.add_argument("--min-height", type=int, default=64, help="smallest person crop height, pixels")
    parser.add_argument("--max-pixels", type=int, help="skip larger images (default: Pillow's limit, about 89 million)")
    parser.add_argument("--crops-per-track", type=int, default=3, help="crops of each person encoded and stored")
    parser.add_argument("--batch-size", type=int, default=32, help="crops encoded and written at once")
    parser.add_argument("--workers", type=int,
                        help="threads searching frames for people while encoding goes on (default: one per core; "
                             "1: one frame at a time); the index is the same whatever their number")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    index = FootageIndex(args.out, model=args.model, batch_size=args.batch_size)
    detector = HOGPersonDetector(upscale=args.upscale, min_score=args.min_score,
                                 min_size=(args.min_width, args.min_height))
    with logging_redirect_tqdm():
        report = index.add_sources(args.sources, detector=detector, frame_step=args.frame_step,
                                   crop_aspect=args.crop_aspect, max_pixels=args.max_pixels,
                                   crops_per_track=args.crops_per_track,
                                   workers=args.workers, progress=not args.no_progress)
    print(report.summary())
    static = sum(track["static"] for track in index.tracks)
    print(f"{args.out}: {len(index)} tracks ({static} static), {len(index.records)} crops")
    return report


if __name__ == "__main__":
    main()
