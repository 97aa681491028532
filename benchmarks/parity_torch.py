"""The PyTorch recipe's side of `benchmarks/parity.py`: one seed, per-epoch test accuracy as JSON.

Run by `parity.py` with a Python that has torch and torchvision (torchvision
from PyPI does not import beside every torch; `parity.py --torch-python`
names the interpreter). It reads the images `parity.py` decoded (so both
sides train and test on the same pixels) and the run's `TrainConfig` as
JSON, and trains as the reference notebook does:

    torchvision: ColorJitter(b, c, s, h) -> RandomCrop(32, padding=4)
      -> RandomHorizontalFlip() -> ToTensor() -> Normalize(mean, std)
      -> Cutout(16) (one square per image, centre uniform over the image,
         clipped at the borders, filled with 0 after normalising)
    DataLoader(batch_size, shuffle=True), the last batch kept
    per batch: mixup, lambda ~ Beta(alpha(e), alpha(e)) (NumPy), partners
      from torch.randperm; loss lambda CE(y_a) + (1 - lambda) CE(y_b) with
      label smoothing (= CE on the mixed one-hot targets)
    per epoch: the learning rate and alpha of epoch e (the recipe's formulas)
    SGD(momentum, weight_decay), evaluation on the normalised test images in
    eval mode after every epoch.

Each component follows the config's switches (`color_jitter`,
`mixup_cutout`, `use_se`), as the Keras side does.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from keras_seresnet.config import TrainConfig  # noqa: E402  (a pure-Python dataclass)
from keras_seresnet.schedules import learning_rate_at, mixup_alpha_at  # noqa: E402
from reference.torch_seresnet import ReferenceSEResNet, normalise, train_reference  # noqa: E402


class Cutout:
    """DeVries & Taylor's cutout on a normalised CHW tensor: one `size` square set to 0."""

    def __init__(self, size, rng):
        self.size, self.rng = size, rng

    def __call__(self, image):
        height, width = image.shape[1:]
        cy, cx = self.rng.integers(height), self.rng.integers(width)
        half = self.size // 2
        y1, y2 = max(cy - half, 0), min(cy - half + self.size, height)
        x1, x2 = max(cx - half, 0), min(cx - half + self.size, width)
        image = image.clone()
        image[:, y1:y2, x1:x2] = 0.0
        return image


class Images(torch.utils.data.Dataset):
    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.x[index])), int(self.y[index])


def make_loader(x, y, config, rng, generator):
    steps = []
    if config.color_jitter:
        steps.append(
            T.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue)
        )
    steps += [T.RandomCrop(32, padding=config.crop_padding)]
    if config.horizontal_flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(config.mean, config.std)]
    if config.mixup_cutout and config.cutout_size:
        steps.append(Cutout(config.cutout_size, rng))
    return torch.utils.data.DataLoader(
        Images(x, y, T.Compose(steps)),
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=0,
    )


def mixed_batches(loader, config, alpha, rng):
    """The notebook's mixup per batch, as (images, soft targets)."""
    for images, labels in loader:
        targets = torch.nn.functional.one_hot(labels, config.num_classes).float()
        if config.mixup_cutout:
            lam = float(rng.beta(alpha, alpha))
            index = torch.randperm(len(images))
            images = lam * images + (1.0 - lam) * images[index]
            targets = lam * targets + (1.0 - lam) * targets[index]
        yield images, targets


def evaluate(model, x, y, batch_size):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(normalise(x[start : start + batch_size]))
            correct += int((logits.argmax(1).numpy() == y[start : start + batch_size]).sum())
    return correct / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--config", required=True, help="the TrainConfig as JSON text")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    config = TrainConfig.from_json(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    data = np.load(args.data)
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    model = ReferenceSEResNet(use_se=config.use_se, dropout=config.dropout, widths=config.widths)
    loader = make_loader(x_train, y_train, config, rng, generator)
    optimizer, accuracies, losses = None, [], []
    for epoch in range(config.epochs):
        batches = mixed_batches(loader, config, mixup_alpha_at(epoch, config), rng)
        epoch_losses, optimizer = train_reference(
            model,
            [(learning_rate_at(epoch, config), batches)],
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            label_smoothing=config.label_smoothing,
            optimizer=optimizer,
        )
        losses.append(float(np.mean(epoch_losses[0])))
        if not math.isfinite(losses[-1]):
            break
        accuracies.append(evaluate(model, x_test, y_test, 500))
    print(json.dumps({"test_accuracy": accuracies, "loss": losses}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
