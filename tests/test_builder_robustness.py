"""A builder problem in one class costs that class only (the fairseq reproduction)."""

from gradlint.engine import analyse_source
from gradlint.graph import builder as B

FAIRSEQ_LIKE = """
import torch
import torch.nn as nn
from fairseq.modules import LayerDropModuleList, transformer_layer
from fairseq.distributed import fsdp_wrap


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder_layerdrop = cfg.encoder.layerdrop
        if self.encoder_layerdrop > 0.0:
            self.layers = LayerDropModuleList(p=self.encoder_layerdrop)
        else:
            self.layers = nn.ModuleList([])
        self.layers.extend([self.build_encoder_layer(cfg) for i in range(cfg.encoder.layers)])

    def build_encoder_layer(self, cfg):
        layer = transformer_layer.TransformerEncoderLayerBase(cfg)
        return fsdp_wrap(layer, min_num_params=0)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(20)])
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        for f in self.fcs:
            x = torch.sigmoid(f(x))
        return self.head(x)
"""


def test_an_unresolved_element_in_an_extended_module_list_is_an_unknown():
    codes = [d.code for d in analyse_source(FAIRSEQ_LIKE, "m.py")]
    assert "GL002" not in codes and "GL101" in codes  # the stack in the other class is still seen


def test_a_builder_bug_in_one_class_loses_only_that_class(monkeypatch):
    real = B.Builder.build

    def broken(self):
        if self.cls is not None and self.cls.name == "Encoder":
            raise KeyError("boom")
        return real(self)

    monkeypatch.setattr(B.Builder, "build", broken)
    found = analyse_source(FAIRSEQ_LIKE, "m.py")
    errors = [d for d in found if d.code == "GL002"]
    assert len(errors) == 1 and "class Encoder" in errors[0].message and errors[0].line == 8
    assert "GL101" in {d.code for d in found}
