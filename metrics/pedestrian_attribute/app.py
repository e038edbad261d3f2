"""The metric Space: evaluate's widget around this folder's module."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("pedestrian_attribute.py")
launch_gradio_widget(module)
