"""`scripts/export_onnx.py` writes the image encoder, text encoder and fusion + ITM stage of a checkpoint as ONNX into
its `onnx/` folder, fp32 and int8; onnxruntime alone (a bare environment where torch cannot be imported, with a cached
overlay of onnxruntime) runs both at other batch sizes and text lengths than the export's: fp32 matches torch within
1e-4, int8 stays close to it (`INT8_TOLERANCE`) without being equal."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from aptm.export import ONNX_STAGES, export_onnx, int8_name
from modeling_aptm import APTMForImageClassification, APTMModel

from helpers.bare_environment import bare_python
from helpers.models import tiny_config
from helpers.overlay import onnx_overlay
from helpers.paths import REPO

# How far the int8 files may stray from torch fp32, by output: the lowest cosine of a normalised feature with torch's,
# and the largest absolute difference of token states and ITM logits. Measured on this test's model (onnxruntime
# 1.32, AVX-512 VNNI): feature cosine 0.9991 (images) and 0.99992 (texts), token states 0.097 (images) and 0.028
# (texts), ITM logits 0.0020; on the quickstart checkpoint: feature cosine >= 0.9997 (images), >= 0.997 (texts), ITM
# logits 0.023 at most (docs/performance.md). The bounds leave about 4x room over this model's (another build of
# onnxruntime, or a CPU without VNNI, rounds differently) and still catch a broken quantisation (a wrong scale or
# axis takes a cosine far below 0.99).
INT8_TOLERANCE = {"features_cosine": 0.996, "image_embeds": 0.4, "text_embeds": 0.12, "itm_logits": 0.01}


def test_onnxruntime_alone_matches_torch(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    torch.manual_seed(0)
    model = APTMModel(tiny_config()).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    packages = onnx_overlay()
    exported = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), str(folder)],
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{packages}",
                                   "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"},
                              capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == sorted([*ONNX_STAGES, *map(int8_name, ONNX_STAGES)])

    generator = torch.Generator().manual_seed(3)
    inputs = {"pixel_values": torch.randn(3, 3, 384, 128, generator=generator),
              "input_ids": torch.randint(1000, 5000, (3, 11), generator=generator),
              "attention_mask": torch.tensor([[1] * 11, [1] * 8 + [0] * 3, [1] * 5 + [0] * 6])}
    with torch.no_grad():
        image_embeds = model.vision_model(inputs["pixel_values"]).last_hidden_state
        text_embeds = model.text_model(inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
        expected = {"image_features": model.image_features_from_embeds(image_embeds), "image_embeds": image_embeds,
                    "text_features": model.text_features_from_embeds(text_embeds), "text_embeds": text_embeds,
                    "itm_logits": model.itm_logits(text_embeds, inputs["attention_mask"], image_embeds)}
    np.savez(tmp_path / "inputs.npz", **{name: value.numpy() for name, value in inputs.items()})
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # onnxruntime alone: any import of torch fails
        import numpy as np
        import onnxruntime
        folder = {str(folder / "onnx")!r}
        inputs = dict(np.load("inputs.npz"))
        def run(name, feeds):
            session = onnxruntime.InferenceSession(f"{{folder}}/{{name}}", providers=["CPUExecutionProvider"])
            return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        for suffix in ("", "_int8"):
            outputs = run(f"image_encoder{{suffix}}.onnx", {{"pixel_values": inputs["pixel_values"]}})
            outputs.update(run(f"text_encoder{{suffix}}.onnx", {{"input_ids": inputs["input_ids"],
                                                               "attention_mask": inputs["attention_mask"]}}))
            outputs.update(run(f"fusion_itm{{suffix}}.onnx", {{"text_embeds": outputs["text_embeds"],
                                                             "attention_mask": inputs["attention_mask"],
                                                             "image_embeds": outputs["image_embeds"]}}))
            np.savez(f"outputs{{suffix}}.npz", **outputs)
        import json, onnx
        operators = {{name: sorted({{node.op_type for node in onnx.load(f"{{folder}}/{{name}}").graph.node}})
                     for name in ("image_encoder_int8.onnx", "text_encoder_int8.onnx", "fusion_itm_int8.onnx")}}
        open("operators.json", "w").write(json.dumps(operators))
    """)
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(packages)})
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    assert sorted(outputs.files) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value.numpy(), atol=1e-4, err_msg=name)

    operators = json.loads((tmp_path / "operators.json").read_text())
    for name, types in operators.items():  # integer matrix products, the patch embedding an integer convolution
        assert "MatMulInteger" in types, f"{name}: {types}"
    assert "ConvInteger" in operators["image_encoder_int8.onnx"]
    quantised = np.load(tmp_path / "outputs_int8.npz")
    assert sorted(quantised.files) == sorted(expected)
    for name, value in expected.items():
        value, difference = value.numpy(), np.abs(quantised[name] - value.numpy()).max()
        assert difference > 1e-6, f"{name}: the int8 file gives fp32's outputs, it is not quantised"
        if name.endswith("_features"):
            cosine = (quantised[name] * value).sum(-1).min()
            assert cosine >= INT8_TOLERANCE["features_cosine"], f"{name}: cosine with torch fp32 {cosine}"
        else:
            assert difference <= INT8_TOLERANCE[name], f"{name}: int8 differs from torch fp32 by {difference}"


def test_export_refuses_a_model_without_the_retrieval_stages(tmp_path):
    with pytest.raises(ValueError, match="APTMForImageClassification is not a retrieval model"):
        export_onnx(APTMForImageClassification(tiny_config()), tmp_path)
