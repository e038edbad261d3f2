"""Stand-ins for the few modules that transformers' common test files import but its source distribution lacks
(`helpers.transformers_common` copies them next to the common test files, under the names the imports expect)."""
