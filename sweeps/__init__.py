"""Optuna sweeps over backbones × datasets, and the leaderboard built from their storage."""
