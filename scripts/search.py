"""Search an index built by scripts/index_gallery.py with a sentence, an example image of the person, or both:
prints the ranked crops (score, source, frame, time, box) and writes a ranked grid of them.

    python scripts/search.py outputs/footage "a woman in a red coat" --top 10
    python scripts/search.py outputs/footage --image query.jpg --json
    python scripts/search.py outputs/footage "a man with a backpack" --image query.jpg --image-weight 0.3
"""

import argparse
import json
import sys

from aptm.footage import FootageIndex, matches_grid, matches_table
from aptm.retrieval import FUSIONS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", metavar="INDEX_DIR")
    parser.add_argument("text", nargs="?", help="a description of the person")
    parser.add_argument("--image", help="an example picture of the person (a crop)")
    parser.add_argument("--image-weight", type=float, default=0.5, help="weight of the image with both text and image")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--fusion", choices=FUSIONS, help="text score fusion (default: aptm, ITM re-ranking)")
    parser.add_argument("--source", help="search only the crops of this indexed file (a video, an archive...)")
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: the index's own)")
    parser.add_argument("--grid", default="search_results.png", help="ranked grid PNG written here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.text is None and args.image is None:
        parser.error("give a text, --image, or both")

    index = FootageIndex(args.index, model=args.model)
    matches = index.search(text=args.text, image=args.image, top=args.top, image_weight=args.image_weight,
                           fusion=args.fusion, source=args.source)
    query = " + ".join(part for part in (args.text, args.image and f"[image {args.image}]") if part)
    matches_grid(matches, query, args.grid)
    if args.json:
        print(json.dumps([match.to_dict() for match in matches], indent=1))
    else:
        print(matches_table(matches))
    print(f"wrote {args.grid}", file=sys.stderr)
    return matches


if __name__ == "__main__":
    main()
