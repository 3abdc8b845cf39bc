"""Models whose forward takes more than one tensor, or a dict: measured through configuration."""
import torch
import torch.nn as nn


class TwoInputTransformer(nn.Module):
    """Token ids and an attention mask, as Hugging Face-style encoders take them."""

    def __init__(self, vocab=100, dim=32, heads=4, depth=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        x = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        return self.head(x[:, 0])


class DictModel(nn.Module):
    """A batch dict, as data loaders of tabular and graph models yield them."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, batch):
        h = torch.relu(self.fc1(batch["features"]))
        return self.fc2(h) * batch["scale"]
