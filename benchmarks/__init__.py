"""dgl-ssm's benchmark suite: datasets, the trainer and the experiment runners."""
