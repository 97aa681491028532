"""Your own `model.fit` with the recipe's parts: model, tf.data pipeline, optimizer, loss, callbacks.

    python examples/fit.py --data-dir ../cifar10 --epochs 30

`keras_seresnet.train()` (the `keras-seresnet-train` command) does the same
and adds a run folder that resumes after a crash; this script is what to
copy when you want the training loop in your own hands. It trains the `fast`
preset (the pretrained weights' 30-epoch schedule; `TrainConfig()` is the
paper's 250-epoch recipe) with the schedule fitted to `--epochs`.
"""

import argparse

import keras_seresnet as ks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        help="CIFAR-10 as a JPEG tree or the python batches; default: the keras.datasets download",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--limit-train", type=int, help="use the first N training images")
    parser.add_argument("--limit-test", type=int, help="use the first N test images")
    args = parser.parse_args(argv)

    config = ks.TrainConfig.fast(epochs=args.epochs)
    (x_train, y_train), (x_test, y_test) = ks.load_cifar10(
        args.data_dir, limit_train=args.limit_train, limit_test=args.limit_test
    )

    model = ks.compile_model(ks.build_from_config(config), config)
    epoch = ks.make_epoch_variable()  # which epoch's batches the dataset makes
    history = model.fit(
        ks.make_train_dataset(x_train, y_train, config, epoch=epoch),
        validation_data=ks.make_eval_dataset(x_test, y_test),
        epochs=config.epochs,
        callbacks=ks.recipe_callbacks(config, epoch),  # sets the epoch, lr, alpha; EMA swap
        shuffle=False,  # the dataset shuffles, by (seed, epoch)
    )
    print(
        f"test accuracy after {config.epochs} epochs: "
        f"{100 * history.history['val_accuracy'][-1]:.2f}%"
    )
    return model


if __name__ == "__main__":
    main()
