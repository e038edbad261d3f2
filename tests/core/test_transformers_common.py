"""transformers' own common tests on APTM's models and configurations (`ModelTesterMixin`, `ConfigTester`), from the
source distribution of the installed transformers (see `helpers.transformers_common`). Every flag or override set
below says why; everything else runs as transformers runs it on its own models."""

import json
import unittest

import torch
from torch import nn

from configuration_aptm import APTMConfig, APTMCrossConfig, APTMTextConfig, APTMVisionConfig
from modeling_aptm import APTMForImageClassification, APTMForPreTraining, APTMModel

from helpers.models import TINY
from helpers.transformers_common import common_tests

COMMON = common_tests()
ModelTesterMixin = COMMON.modeling.ModelTesterMixin
ConfigTester = COMMON.configuration.ConfigTester
ids_tensor, floats_tensor = COMMON.modeling.ids_tensor, COMMON.modeling.floats_tensor

VOCAB_SIZE = 99


class TowerTester:
    """What the mixin reads about one tower: its layer count (attention maps per forward) and its inputs."""

    def __init__(self, parent, num_hidden_layers, input_names):
        self.parent, self.num_hidden_layers, self.input_names = parent, num_hidden_layers, input_names

    def prepare_config_and_inputs_for_common(self):
        config, inputs = self.parent.prepare_config_and_inputs_for_common()
        return config, {name: inputs[name] for name in self.input_names}


class APTMModelTester:
    """The tiny configuration of `helpers.models`, made smaller: images of 128x64 and a Swin of two stages with one
    block each (stage 1's 32x16 patch grid still has shifted 8x8 windows), so that the vision tower's 2 attention maps
    (one per block) and 3 hidden states (patch embeddings + one per stage) are `num_hidden_layers` and
    `num_hidden_layers + 1` as the mixin counts them, and the mixin's limit of 2 layers holds; a fusion tower of one
    layer; vocabulary 99 (the mixin's embedding-resizing tests)."""

    def __init__(self, parent, batch_size=2, seq_length=7):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = True
        vision = {**TINY["vision_config"], "image_size": [128, 64], "depths": [1, 1], "num_heads": [1, 2]}
        self.config_kwargs = {
            **TINY,
            "vision_config": vision,
            "text_config": {**TINY["text_config"], "vocab_size": VOCAB_SIZE},
            "cross_config": {**TINY["cross_config"], "vocab_size": VOCAB_SIZE, "num_hidden_layers": 1},
        }
        self.vision_model_tester = TowerTester(self, len(vision["depths"]), ["pixel_values"])
        self.text_model_tester = TowerTester(self, TINY["text_config"]["num_hidden_layers"],
                                             ["input_ids", "attention_mask"])
        self.vocab_size = VOCAB_SIZE
        self.hidden_size = TINY["text_config"]["hidden_size"]
        self.num_hidden_layers = TINY["text_config"]["num_hidden_layers"]
        self.num_attention_heads = TINY["text_config"]["num_attention_heads"]

    def get_config(self):
        return APTMConfig(**self.config_kwargs)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = ids_tensor([self.batch_size, self.seq_length], VOCAB_SIZE)
        input_ids[:, 0] = 1  # a [CLS]-like first token, never padding
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, -2:] = 0
        pixel_values = floats_tensor([self.batch_size, 3, *config.vision_config.image_size])
        return config, {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


class APTMCompositeTests(ModelTesterMixin):
    """Settings shared by the two image-text classes."""

    _is_composite = True  # APTMConfig has three sub-configs (as CLIP's and BLIP's)
    # the mixin's eager-vs-SDPA grid passes only the main input and these to the model
    additional_model_inputs = ["input_ids", "attention_mask"]
    test_torch_exportable = False  # the export tests are not in the sdist (the stand-in mixin runs none)
    # `get_image_features` returns the image tokens, `hidden_size` wide (the last Swin stage); the mixin compares their
    # width with the first attribute it finds among `embed_dim`... of the vision config, which for a Swin is the
    # first stage's width (8 here, 16 at the output); the shape is checked in test_modeling.py instead
    skip_test_image_features_output_shape = True

    def setUp(self):
        self.model_tester = APTMModelTester(self)

    # As CLIP's and BLIP's composite tests: the hidden states and attentions are per tower (`vision_model_output`,
    # `text_model_output`, `fusion_model_output`), whose shapes differ (Swin stages, text, fusion with
    # cross-attention), so the composite output has no single `hidden_states`/`attentions` for these three tests to
    # read. The per-tower outputs are checked by `get_image_features`/`get_text_features` tests of this mixin and, with
    # their documented shapes, by tests/core/test_modeling.py::test_hidden_states_and_attentions_on_request.
    @unittest.skip("per-tower outputs; see test_modeling.py::test_hidden_states_and_attentions_on_request")
    def test_hidden_states_output(self):
        pass

    @unittest.skip("per-tower outputs; see test_modeling.py::test_hidden_states_and_attentions_on_request")
    def test_attention_outputs(self):
        pass

    @unittest.skip("per-tower outputs; see test_modeling.py::test_hidden_states_and_attentions_on_request")
    def test_retain_grad_hidden_states_attentions(self):
        pass


class APTMModelTest(APTMCompositeTests, unittest.TestCase):
    all_model_classes = (APTMModel,)
    # APTMModel's only loss is ITC (`return_loss`); the fusion encoder and the ITM head compute `itm_logits` but no
    # loss term, so they get no gradient by design (APTMForPreTraining trains them and runs this check below).
    test_all_params_have_gradient = False

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:  # APTM is not in the Auto mappings the mixin reads its label names from (as CLIP's test)
            inputs["return_loss"] = True
        return inputs

    def test_config(self):
        # `vocab_size`/`hidden_size` live on the sub-configs, so no common text properties on the composite; the
        # sub-configs are given in their saved form, which the tester compares the JSON with
        saved = json.loads(self.model_tester.get_config().to_json_string())
        ConfigTester(self, config_class=APTMConfig, has_text_modality=False, common_properties=[],
                     **{key: saved[key] for key in self.model_tester.config_kwargs}).run_common_tests()


class APTMForPreTrainingTest(APTMCompositeTests, unittest.TestCase):
    all_model_classes = (APTMForPreTraining,)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:
            # the MLM inputs, so that the MLM head gets a loss (and a gradient) too; one masked position per caption
            input_ids = inputs["input_ids"]
            positions = torch.ones(len(input_ids), 1, dtype=torch.long, device=input_ids.device)
            inputs.update(mlm_input_ids=input_ids.clone().index_fill_(1, positions[0], 2), mlm_positions=positions,
                          mlm_labels=input_ids.gather(1, positions))
        return inputs


class APTMForImageClassificationTester(APTMModelTester):
    """The vision tower's view of the tiny configuration: what the mixin's hidden-state check compares (the patch
    embeddings: (128/4) x (64/4) tokens of width 8)."""

    def __init__(self, parent):
        super().__init__(parent)
        vision = self.config_kwargs["vision_config"]
        self.seq_length = (vision["image_size"][0] // 4) * (vision["image_size"][1] // 4)
        self.hidden_size = vision["embed_dim"]
        self.num_hidden_layers = len(vision["depths"])
        self.num_attention_heads = vision["num_heads"][0]
        self.num_attributes = self.get_config().num_attributes

    def prepare_config_and_inputs_for_common(self):
        config, inputs = super().prepare_config_and_inputs_for_common()
        return config, {"pixel_values": inputs["pixel_values"]}  # the classifier reads no text


class APTMForImageClassificationTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (APTMForImageClassification,)
    _is_composite = True  # its config is APTMConfig (it saves and loads as the other APTM classes)
    test_resize_embeddings = False  # no text embeddings to resize
    test_torch_exportable = False  # the export tests are not in the sdist (the stand-in mixin runs none)

    def setUp(self):
        self.model_tester = APTMForImageClassificationTester(self)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:  # its label argument is `attribute_labels` (0/1 per attribute), unknown to the mixin
            batch = inputs["pixel_values"].shape[0]
            inputs["attribute_labels"] = torch.randint(0, 2, (batch, self.model_tester.num_attributes),
                                                       device=inputs["pixel_values"].device)
        return inputs

    # As transformers' Swin tests: window attention maps are `(batch * windows, heads, 64, 64)` while the mixin expects
    # `(batch, heads, tokens, tokens)`; their shapes are checked by
    # tests/core/test_modeling.py::test_hidden_states_and_attentions_on_request.
    @unittest.skip("window attention shapes; see test_modeling.py::test_hidden_states_and_attentions_on_request")
    def test_attention_outputs(self):
        pass

    def test_model_get_set_embeddings(self):
        # As transformers' vision model tests (ViT, Swin): the input embedding is the patch embedding, a module but
        # not an `nn.Embedding`, and there is no output embedding
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            self.assertIsNone(model.get_output_embeddings())


class APTMSubConfigTest(unittest.TestCase):
    """`ConfigTester` on each tower's configuration, as transformers runs it on CLIP's and BLIP's sub-configs."""

    def test_vision_config(self):
        # a Swin has `num_heads` and `depths` per stage, not one `num_attention_heads`/`num_hidden_layers`
        ConfigTester(self, config_class=APTMVisionConfig, has_text_modality=False, embed_dim=8,
                     common_properties=["hidden_size", "num_heads", "depths"]).run_common_tests()

    def test_text_config(self):
        ConfigTester(self, config_class=APTMTextConfig, hidden_size=32, num_attention_heads=4).run_common_tests()

    def test_cross_config(self):
        ConfigTester(self, config_class=APTMCrossConfig, hidden_size=32, num_attention_heads=4,
                     encoder_hidden_size=64).run_common_tests()
