"""transformers' own common tests on APTM's processors (`ProcessorTesterMixin`, `ImageProcessingTestMixin`), from the
source distribution of the installed transformers (see `helpers.transformers_common`). Every flag or override set
below says why."""

import tempfile
import unittest

from transformers import AutoConfig, AutoImageProcessor, AutoProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

from aptm.factory import load_tokenizer
from configuration_aptm import APTMConfig
from processing_aptm import APTMImageProcessor, APTMProcessor

from helpers.transformers_common import common_tests

COMMON = common_tests()


class RegisteredWithAutoClasses:
    """The mixins reload the saved parts with `Auto*.from_pretrained` and no `trust_remote_code`; a saved APTM folder
    names its classes in `auto_map` (remote code), so, as `trust_remote_code` does for such a folder, the APTM classes
    are registered with the Auto classes while these tests run, and unregistered after."""

    @classmethod
    def setUpClass(cls):
        AutoConfig.register(APTMConfig.model_type, APTMConfig, exist_ok=True)
        AutoImageProcessor.register(APTMConfig, slow_image_processor_class=APTMImageProcessor, exist_ok=True)
        AutoProcessor.register(APTMConfig, APTMProcessor, exist_ok=True)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for mapping, key in ((CONFIG_MAPPING, APTMConfig.model_type), (IMAGE_PROCESSOR_MAPPING, APTMConfig),
                             (PROCESSOR_MAPPING, APTMConfig)):
            mapping._extra_content.pop(key, None)


class APTMImageProcessingTester(COMMON.image_processing.ImageProcessingTester):
    def _get_image_processing_classes(self):
        # APTM's one image processor (PIL); the mixin otherwise looks it up in transformers' own mapping by model name
        return {"pil": APTMImageProcessor}

    def expected_output_image_shape(self, images):
        return self.num_channels, 384, 128  # every image resized to 384x128, its channels kept


class APTMImageProcessingTest(RegisteredWithAutoClasses, COMMON.image_processing.ImageProcessingTestMixin,
                              unittest.TestCase):
    image_processor_tester_class = APTMImageProcessingTester

    @unittest.skip("an admission rule for models added to the transformers library (torchvision backend required "
                   "after 2025-09); APTM's processor is Hub remote code with one PIL backend")
    def test_new_models_require_torchvision_backend(self):
        pass


class APTMProcessorTest(RegisteredWithAutoClasses, COMMON.processing.ProcessorTesterMixin, unittest.TestCase):
    processor_class = APTMProcessor

    @classmethod
    def _setup_image_processor(cls):
        return APTMImageProcessor.for_dataset("mals")

    @classmethod
    def _setup_tokenizer(cls):
        return load_tokenizer()

    @unittest.skip("APTM's captions are `[CLS] word-pieces` without `[SEP]` (the original APTM tokenisation, which the "
                   "released checkpoints need), so they differ from the plain tokenizer's output by design; "
                   "test_processing.py checks the format")
    def test_subprocessor_defaults_0_text(self):
        pass

    # Saving a processor registered for remote code (`register_for_auto_class`) sets `auto_map` on the saved object
    # itself (transformers' `custom_object_save`), and `from_pretrained` drops it from the loaded one: the mixin's two
    # round-trip tests compare `to_dict()` with it, so they are run here without that key.
    def _check_round_trip(self, nested):
        first = self.get_processor()
        with tempfile.TemporaryDirectory() as folder:
            first.save_pretrained(folder)
            second = self.processor_class.from_pretrained(folder)
        expected = {key: value for key, value in first.to_dict().items() if key != "auto_map"}
        self.assertEqual(second.to_dict(), expected)
        if nested:
            self.assertEqual(second.image_processor.to_dict(), first.image_processor.to_dict())
        self.assertEqual(second.tokenizer.model_max_length, first.tokenizer.model_max_length)

    def test_processor_from_and_save_pretrained(self):
        self._check_round_trip(nested=False)

    def test_processor_from_and_save_pretrained_as_nested_dict(self):
        self._check_round_trip(nested=True)
