"""Search an index built by scripts/index_gallery.py with a sentence, an example image of the person, or both:
prints the people found (one per track: score, source, time span, best moment) and writes a ranked grid of their
best-matching moments and a timeline of when they appear; `--crops` ranks the encoded crops instead (several per
person). Static tracks (parked vehicles, posters, people standing still) are left out unless `--include-static`.

    python scripts/search.py outputs/footage "a woman in a red coat" --top 10
    python scripts/search.py outputs/footage "a man with a backpack" --after 0:30 --before 1:10 --min-duration 2
    python scripts/search.py outputs/footage "a woman in a red coat" --min-probability 0.9
    python scripts/search.py outputs/footage --image query.jpg --json
    python scripts/search.py outputs/footage "a man with a backpack" --image query.jpg --image-weight 0.3 --crops
"""

import argparse
import json
import sys
from pathlib import Path

from aptm.footage import FootageIndex, matches_grid, matches_table
from aptm.footage.labels import parse_time
from aptm.footage.presentation import tracks_table
from aptm.footage.timeline import matches_timeline
from aptm.retrieval import FUSIONS


def time_argument(text):
    """`parse_time` for argparse: its message on a bad time."""
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", metavar="INDEX_DIR")
    parser.add_argument("text", nargs="?", help="a description of the person")
    parser.add_argument("--image", help="an example picture of the person (a crop)")
    parser.add_argument("--image-weight", type=float, default=0.5, help="weight of the image with both text and image")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--fusion", choices=FUSIONS, help="text score fusion (default: aptm, ITM re-ranking)")
    parser.add_argument("--crops", action="store_true", help="rank crops (several per person), not people")
    parser.add_argument("--source", help="search only the people of this indexed file (a video, an archive...)")
    parser.add_argument("--after", type=time_argument, help="only people seen at or after this time (s, m:ss, h:mm:ss)")
    parser.add_argument("--before", type=time_argument, help="only people seen at or before this time")
    parser.add_argument("--min-duration", type=float, default=0.0, help="only people followed this many seconds")
    parser.add_argument("--include-static", action="store_true",
                        help="keep tracks that do not move (parked vehicles, posters, people standing still)")
    parser.add_argument("--min-probability", type=float,
                        help="only people the text describes with at least this calibrated match probability (the "
                             "checkpoint's calibration.json, see scripts/calibrate.py)")
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: the index's own)")
    parser.add_argument("--grid", default="search_results.png", help="ranked grid PNG written here")
    parser.add_argument("--timeline", help="timeline PNG written here (default: the grid's name + _timeline)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.text is None and args.image is None:
        parser.error("give a text, --image, or both")
    if args.min_probability is not None and (args.crops or args.text is None):
        parser.error("--min-probability needs a text and ranks people (not --crops)")

    index = FootageIndex(args.index, model=args.model)
    filters = {"source": args.source, "after": args.after, "before": args.before, "min_duration": args.min_duration,
               "include_static": args.include_static}
    query = {"text": args.text, "image": args.image, "top": args.top, "image_weight": args.image_weight,
             "fusion": args.fusion}
    if args.crops:
        matches = index.search_crops(**query, **filters)
    else:
        matches = index.search(**query, min_probability=args.min_probability, **filters)
    title = " + ".join(part for part in (args.text, args.image and f"[image {args.image}]") if part)
    if not matches:
        print("[]" if args.json else "no person reaches --min-probability")
        return matches
    matches_grid(matches, title, args.grid)
    written = [args.grid]
    if not args.crops:
        timeline = args.timeline or str(Path(args.grid).with_name(Path(args.grid).stem + "_timeline.png"))
        matches_timeline(matches, title, timeline, durations=index.durations)
        written.append(timeline)
    if args.json:
        print(json.dumps([match.to_dict() for match in matches], indent=1))
    else:
        print(matches_table(matches) if args.crops else tracks_table(matches))
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    return matches


if __name__ == "__main__":
    main()
