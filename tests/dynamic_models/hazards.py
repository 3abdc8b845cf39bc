"""Four hazards gradlint reports statically, each to be confirmed by a backward pass."""
import torch
import torch.nn as nn


class Sigmoid20(nn.Module):
    """20 Linear+Sigmoid layers: the gradient reaching the first vanishes."""

    def __init__(self, width=64, depth=20):
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):
        for fc in self.fcs:
            x = torch.sigmoid(fc(x))
        return x


class ConstantMLP(nn.Module):
    """Every weight and bias constant: the units of each layer stay identical."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 4)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.05)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class NormalReLU(nn.Module):
    """normal_(0, 1) weights under ReLU: every layer multiplies the signal by about sqrt(width)."""

    def __init__(self, width=128, depth=8):
        super().__init__()
        self.layers = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 1)

    def forward(self, x):
        return self.layers(x)


class LoudLSTM(nn.Module):
    """An LSTM whose recurrent weights are initialized four times too large."""

    def __init__(self, features=16, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        for name, p in self.lstm.named_parameters():
            if "weight_hh" in name:
                nn.init.normal_(p, 0, 0.5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


def train(model, batches):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(batches):
        x = torch.randn(8, 200, 16)  # sequences of 200 steps: the BPTT length --dynamic measures
        y = torch.randn(8, 200, 1)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()


if __name__ == "__main__":
    train(LoudLSTM(), 100)
