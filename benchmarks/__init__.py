"""dgl-ssm's benchmark suite: datasets, the trainer and the experiment runners."""

from .version_checks import skip_online_version_checks

skip_online_version_checks()  # first, before anything here imports DGL (see version_checks)
