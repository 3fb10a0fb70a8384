"""The paper's datasets, read from a local directory or downloaded by DGL/OGB."""
