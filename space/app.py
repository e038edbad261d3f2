"""Gradio Space: text-based person retrieval with APTM. Set APTM_CHECKPOINT to a checkpoint folder or Hub id
(default: the quickstart checkpoint, built if missing) and run `python space/app.py`."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's packages, next to this folder

from aptm.demo import build_demo, default_demo  # noqa: E402

if __name__ == "__main__":
    app = build_demo(default_demo(os.environ.get("APTM_CHECKPOINT")))
    app.queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), max_file_size="20mb", share=False)
