"""modelsign: model weights as a signed supply-chain artifact."""

__version__ = "0.1.0"
