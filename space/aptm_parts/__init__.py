"""The parts of the `aptm` package this Space runs, in the package's own layout: `images` (the image decoder shared
by every reader) and `footage` (video and archive reading, person detection, crops, tracks, ranking, captions,
timelines). The module files are copies of the package's, written by `aptm.hub.copy_library_files` when the Space is
published (and by `make install` in a checkout); they import only numpy, torch, Pillow, tqdm, OpenCV and each other."""
