"""Optuna sweeps over backbones × datasets, and the leaderboard built from their storage."""

from dgl_ssm_bench.version_checks import skip_online_version_checks

skip_online_version_checks()  # first, before the runner imports DGL (see there)
