"""The footage pieces of the `aptm` package that the Space runs: video frames with time stamps (`sources`), person
detection and non-maximum suppression (`detection`), crops with provenance (`crops`), tracks (`tracking`), ranking
of crops and tracks by a sentence, an example image or both (`ranking`), captions (`labels`) and the timeline
(`timeline`). Each module here is a link to the package's own file (`aptm/footage/`), uploaded as a file by
`scripts/publish_space.py`; they import only numpy, torch, Pillow, tqdm, OpenCV and each other."""
