"""The metric Space: evaluate's widget around this folder's module."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("text_person_retrieval.py")
launch_gradio_widget(module)
