"""Stand-in for `tests/utils/test_configuration_utils.py` (not in the sdist). `ConfigTester.check_config_arguments_init`
builds a config from `config_common_kwargs` and checks each one is kept; these are general `PretrainedConfig`
arguments (every config must keep them), chosen here since the original list is not distributed."""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "problem_type": "regression",
    "tie_word_embeddings": False,
}
