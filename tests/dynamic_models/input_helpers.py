"""The input-fn of DictModel: ``(args, kwargs)`` for one forward."""
import torch


def make_batch(batch_size=8):
    return [{"features": torch.randn(batch_size, 16), "scale": torch.ones(batch_size, 1)}], {}
