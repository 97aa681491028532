"""The reference PyTorch notebook's SE-ResNet, for parity tests and side-by-side benchmarks.

Written from the recipe (docs/recipe.md, "Model") with the notebook's module names, so its
`state_dict` has the reference checkpoint's 131 keys. PyTorch is optional:
importing this module needs it (`pip install keras-seresnet[torch]`); the
rest of the package does not.

The benchmarks here run the reference's training step (forward, label-
smoothed cross-entropy on mixup targets, backward, SGD with momentum 0.9 and
coupled weight decay 5e-4) and its inference, with the thread count set as
the notebook's machine had it, so `keras_seresnet.benchmark` can time both
frameworks in one process on the same machine. `train_reference` is the
notebook's training loop (per-epoch learning rate, then those steps), which
tests/test_trajectory_parity.py runs beside the package's loop and
benchmarks/parity.py runs with torchvision's augmentations.
"""

import numpy as np

from keras_seresnet.config import TrainConfig

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "reference.torch_seresnet needs PyTorch: pip install 'keras-seresnet[torch]' "
        "(or pip install torch)"
    ) from error

# The reference normalises outside its model, with the recipe's numbers.
MEAN = np.array(TrainConfig.mean)
STD = np.array(TrainConfig.std)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excitation = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        n, c = x.shape[:2]
        return x * self.excitation(self.squeeze(x).view(n, c)).view(n, c, 1, 1)


class BasicBlock(nn.Module):
    def __init__(self, in_channels, channels, stride, use_se):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels) if use_se else nn.Identity()
        self.connection = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.connection = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return F.relu(y + self.connection(x))


class Stage(nn.Module):
    def __init__(self, in_channels, channels, stride, use_se):
        super().__init__()
        self.layer = nn.Sequential(
            BasicBlock(in_channels, channels, stride, use_se),
            BasicBlock(channels, channels, 1, use_se),
        )

    def forward(self, x):
        return self.layer(x)


class ReferenceSEResNet(nn.Module):
    """Input: the normalised image, NCHW float [N, 3, 32, 32]. Output: 10 logits [N, 10].

    `widths` are the channels of the four stages (the stem has `widths[0]`);
    the notebook's are (32, 64, 128, 256). Other widths give the model
    `build_seresnet(widths=...)` builds, for fast parity tests; SE sits in
    stages 3 and 4 with a bottleneck of C // 16.
    """

    def __init__(self, use_se=True, dropout=0.2, widths=(32, 64, 128, 256)):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.conv1 = nn.Conv2d(3, w1, 3, 1, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(w1)
        self.layer1 = Stage(w1, w1, 1, False)
        self.layer2 = Stage(w1, w2, 2, False)
        self.layer3 = Stage(w2, w3, 2, use_se)
        self.layer4 = Stage(w3, w4, 2, use_se)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, 10)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x)))


def normalise(images, dtype=torch.float32):
    """Raw NHWC pixels in [0, 255] (numpy) -> the reference's input: normalised NCHW `dtype`.

    Computed in float64, then cast, so a float64 input is exact to float64.
    """
    normalised = (np.asarray(images, "float64") / 255.0 - MEAN) / STD
    return torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy()).to(dtype)


def make_training_step(model, *, lr=0.1, momentum=0.9, weight_decay=5e-4, label_smoothing=0.08):
    """The notebook's training step: returns `step(images, targets) -> loss`.

    `images` are normalised NCHW float32 [N, 3, 32, 32]; `targets` are the
    mixed one-hot labels [N, 10] (CE on them equals the notebook's
    lambda * CE(y_a) + (1 - lambda) * CE(y_b)).
    """
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(images, targets):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def train_reference(
    model, epochs, *, momentum=0.9, weight_decay=5e-4, label_smoothing=0.08, optimizer=None
):
    """The notebook's training loop, written from the recipe: returns the loss of every step.

    For each epoch, in order: every parameter group's learning rate is set to
    that epoch's value (the notebook's per-epoch schedule), then one step per
    batch: forward in training mode, `F.cross_entropy(logits, targets,
    label_smoothing=...)` on the (mixed) soft targets, backward, and
    `torch.optim.SGD(momentum, weight_decay)` (heavy-ball momentum with
    dampening 0, coupled L2 on every parameter).

    Args:
        model: a `ReferenceSEResNet` (or any module mapping the batches'
            images to logits); trained in place.
        epochs: iterable of `(learning_rate, batches)`, one per epoch;
            `batches` iterates `(images, targets)`: normalised NCHW images
            [N, 3, 32, 32] and soft targets [N, 10] whose rows sum to 1, both
            tensors of the model's dtype. Consumed lazily, so the batches may
            be made on the fly.
        momentum: SGD momentum. Default 0.9.
        weight_decay: coupled L2 factor. Default 5e-4.
        label_smoothing: of the cross-entropy. Default 0.08.
        optimizer: an existing `torch.optim.SGD` to continue with (its
            momentum buffers kept); None makes one.

    Returns:
        `(losses, optimizer)`: `losses[e][k]` is the loss (float) of step k
        of epoch e, computed before that step's update.
    """
    if optimizer is None:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.0, momentum=momentum, weight_decay=weight_decay
        )
    model.train()
    losses = []
    for learning_rate, batches in epochs:
        for group in optimizer.param_groups:
            group["lr"] = float(learning_rate)
        epoch_losses = []
        for images, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), targets, label_smoothing=label_smoothing)
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
        losses.append(epoch_losses)
    return losses, optimizer
