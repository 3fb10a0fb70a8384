"""Reading the project's YAML files (run configs, search spaces, causes.yaml) strictly.

PyYAML keeps the last of two equal keys in a mapping without a word, so a config with two
``optim:`` sections, or a space with two ``fixed:`` ones, silently lost the first. Here a
repeated key is a ``yaml.YAMLError`` with both positions, which each reader already turns
into its one-line "not valid YAML" error.
"""

import yaml


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys given
                    continue  # beside it override the merged ones, as YAML means them to
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable: SafeLoader names it
                    continue
                if earlier is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        problem=f"the key {key!r} is given twice (first on line "
                        f"{earlier.line + 1}), and YAML would keep only the last: merge them "
                        "into one",
                        problem_mark=key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text):
    """``yaml.safe_load(text)``, but a key repeated in a mapping raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
