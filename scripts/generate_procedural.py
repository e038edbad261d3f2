"""Generate the procedural pedestrian dataset (images, captions, 27 MALS attribute labels) in the real file formats,
and optionally a contact sheet PNG to look at it.

    python scripts/generate_procedural.py --data-dir data/procedural --contact-sheet data/procedural/contact_sheet.png
"""

import argparse
import time

from datasets_scripts import procedural


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder to write into")
    parser.add_argument("--num-identities", type=int, default=250)
    parser.add_argument("--views-per-identity", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--contact-sheet", help="also save a PNG of test samples with their captions here")
    parser.add_argument("--sheet-count", type=int, default=24, help="images on the contact sheet")
    parser.add_argument("--num-proc", type=int, default=1, help="processes drawing the images (same bytes for any)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    procedural.generate(args.data_dir, num_identities=args.num_identities, views_per_identity=args.views_per_identity,
                        seed=args.seed, test_fraction=args.test_fraction, validation_fraction=args.validation_fraction,
                        num_proc=args.num_proc)
    images = args.num_identities * args.views_per_identity
    print(f"wrote {images} images to {args.data_dir} in {time.perf_counter() - start:.1f} s")
    if args.contact_sheet:
        print(f"contact sheet: {procedural.render_contact_sheet(args.data_dir, args.contact_sheet, count=args.sheet_count)}")


if __name__ == "__main__":
    main()
