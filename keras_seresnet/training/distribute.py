"""How a training run uses the hardware: device strategy, mixed precision, XLA.

Under Keras's JAX or PyTorch backend a run is on one device (`OneDevice`):
the strategies below are TensorFlow's. Mixed precision and `jit` (Keras's
`jit_compile`: XLA under TensorFlow and JAX, `torch.compile` under PyTorch)
work under every backend, and tf.data feeds them all.

The `TrainConfig` fields `strategy`, `mixed_precision` and `jit` (flags
`--strategy`, `--mixed-precision`, `--jit`) choose them; `train()` applies
them through this module.

Strategies (`make_strategy`):

- "default": one device, TensorFlow's default strategy.
- "mirrored": `tf.distribute.MirroredStrategy` over every local GPU, or every
  logical CPU device when there is no GPU (one, unless configured otherwise).
- "multiworker": `tf.distribute.MultiWorkerMirroredStrategy` over the
  machines that the `TF_CONFIG` environment variable lists (checked by
  `read_tf_config`); every machine runs the same command.

Under any of them the training numbers stay those of one device:

- Data: the host's tf.data pipeline makes the same global batches of
  `config.batch_size` as on one device (same order, augmentation and mixup;
  its alpha and epoch variables live on the host), and Keras splits each
  batch across the replicas (`experimental_distribute_dataset`; with several
  workers each keeps its share of every batch, `AutoShardPolicy.DATA`).
- Gradients: Keras sums the per-replica gradients of per-replica mean
  losses scaled by 1/replicas, i.e. the gradient of the global batch's mean
  loss (exactly so when the batch splits evenly; a remainder batch that does
  not weighs its shares equally); the learning-rate schedule is unchanged.
- BatchNorm: with more than one replica `train()` builds the model with
  `build_seresnet(synchronized=True)`, so the batch statistics are
  all-reduced over the global batch, as one device computes them;
  unsynchronised, each replica would normalise with the statistics of its
  own share, a different model. The saved files keep `synchronized=True`,
  which changes nothing on one device or under another backend.
- Not the same: dropout masks. Every replica draws from the same seed state,
  so a replica's share gets other masks than on one device (and the replicas'
  shares get equal ones). Rounding differs too (all-reduce order, one-pass
  variance in synchronised BatchNorm): with dropout off, replicas and one
  device agree to float32 rounding. Metrics in the logs are means of the
  replicas' values, exact when the shares are equal.

Only the chief (`is_chief`) writes the run folder; the other workers write
to a temporary folder that is deleted at the end (Keras's recipe: every
worker must save, since saving may involve collective ops). When a run is
resumed, the chief's checkpoint is the truth: the epoch to resume from and
every model and optimizer variable are sent from the chief to all workers
(`broadcast_from_chief`, `copy_variables_from_chief`), so no shared file
system is needed, and workers started with another config stop with an error
(`all_workers`).

Precision (`precision_policy`): "mixed_float16" and "mixed_bfloat16" are
Keras's policies: layers compute in float16/bfloat16 with float32 weights
(the optimizer updates these float32 master weights), BatchNormalization
normalises the low-precision feature map with float32 statistics, scale and
offset in one fused kernel (`keras_seresnet.models.layers`), the logits layer
computes in float32 (`build_seresnet`), and so do the softmax and the loss.
Under mixed_float16 Keras wraps the optimizer in a `LossScaleOptimizer`
(dynamic loss scaling), whose state the checkpoints keep. XLA (`jit`) is
`model.compile(jit_compile=...)`; `check_xla` refuses the one combination
TensorFlow cannot run.
"""

import contextlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_seresnet.config import PRECISION_POLICIES, ConfigError
from keras_seresnet.errors import InvalidValueError

_TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\' on host1, and "index": 1 on host2'
)


def read_tf_config(environ=None):
    """Reads and checks the `TF_CONFIG` environment variable of a multi-worker run.

    Args:
        environ: the environment to read. Default `os.environ`.

    Returns:
        The parsed dict: `cluster` (`{"worker": ["host:port", ...]}`, maybe
        a `"chief"` job too) and `task` (`{"type": ..., "index": ...}`, this
        machine's place in the cluster).

    Raises:
        InvalidValueError: TF_CONFIG is missing, not JSON, or inconsistent;
            the message quotes it and shows a correct example.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        raise InvalidValueError(
            "--strategy multiworker reads the cluster from the TF_CONFIG environment "
            f"variable, which is not set. Set it on every machine, e.g. {_TF_CONFIG_EXAMPLE}."
        )

    def fail(problem):
        raise InvalidValueError(
            f"TF_CONFIG {problem}. Received: TF_CONFIG={text!r}. "
            f"Expected e.g. {_TF_CONFIG_EXAMPLE}."
        )

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"is not valid JSON ({e})")
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        fail('has no "cluster" object')
    cluster, task = value["cluster"], value.get("task")
    if not cluster.get("worker") and not cluster.get("chief"):
        fail('lists no "worker" (or "chief") addresses in "cluster"')
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            fail(f'has a "{job}" job that is not a list of "host:port" addresses')
    if not isinstance(task, dict) or task.get("type") not in cluster:
        fail(f'needs "task": {{"type": one of {sorted(cluster)}, "index": ...}}')
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        fail(
            f"has task index {index!r}, not in 0..{len(cluster[task['type']]) - 1} "
            f'for the {len(cluster[task["type"]])} "{task["type"]}" addresses'
        )
    return value


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3 passes it.

    Keras 3.15's `fit` and `evaluate` fail under this strategy as TensorFlow
    ships it (keras-team/keras#20585, tensorflow/tensorflow#72388), at two
    calls of `reduce` that MirroredStrategy tolerates:

    - a nest: Keras learns a batch's shapes by reducing a sample batch
      `(x, y)`; `Strategy.reduce` is written for single values ("TODO:
      support `value` being a nest"). Here each value is reduced.
    - `axis=0` on per-replica scalars: Keras averages each step's metric
      values with `reduce("MEAN", value, axis=0)`; a scalar has no axis 0,
      and its mean across replicas (what MirroredStrategy returns there) is
      the reduction with `axis=None`.
    """

    def reduce(self, reduce_op, value, axis):
        reduce_one = super().reduce

        def rank(one):
            if isinstance(one, tf.distribute.DistributedValues):
                one = self.experimental_local_results(one)[0]
            return tf.convert_to_tensor(one).shape.rank

        return tf.nest.map_structure(
            lambda one: reduce_one(reduce_op, one, None if rank(one) == 0 else axis), value
        )


class OneDevice:
    """The strategy of a one-device run under Keras's JAX or PyTorch backend: no `tf.distribute`.

    It has what `train()` asks of a strategy: a `scope()` (nothing to enter)
    and `num_replicas_in_sync` (1); `is_chief` is True and `check_xla` has
    nothing to refuse.
    """

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def make_strategy(name):
    """The strategy of a `TrainConfig.strategy` value.

    Call it before anything else in the process runs TensorFlow: a
    `MultiWorkerMirroredStrategy` set up later fails (one worker) or warns
    that earlier tensors may break (several).

    Args:
        name: "default", "mirrored" or "multiworker" (see the module doc).

    Returns:
        The `tf.distribute.Strategy`; under another Keras backend than
        TensorFlow's, "default" gives `OneDevice()` (one device, the
        backend's own). "mirrored" uses every logical GPU, or every logical
        CPU device when there is none
        (`tf.config.set_logical_device_configuration` can split a CPU into
        several, for tests).

    Raises:
        ConfigError: "mirrored" or "multiworker" under another Keras backend
            than TensorFlow's (they are `tf.distribute` strategies).
        InvalidValueError: (multiworker) a bad TF_CONFIG.
        ValueError: an unknown name, or (multiworker) a cluster set up after
            TensorFlow started.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        if name == "default":
            return OneDevice()
        raise ConfigError(
            f"Config field `strategy` must be 'default' under Keras's {backend} backend: "
            f"{name!r} is a tf.distribute strategy, which needs KERAS_BACKEND=tensorflow. "
            f"Received: strategy={name!r}",
            ("strategy",),
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        read_tf_config()
        try:
            return _MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise ValueError(
                "--strategy multiworker must set up TensorFlow's collective ops before "
                "TensorFlow runs anything in the process; start a new process and call "
                f"train() first. ({e})"
            ) from None
    raise ValueError(
        "Argument `name` must be one of 'default', 'mirrored', 'multiworker'. "
        f"Received: name={name!r}"
    )


def check_xla(strategy, jit):
    """Refuses `jit=True` with several CPU devices in one process, which TensorFlow cannot run.

    The XLA-compiled step of one replica cannot read the variables of
    another logical CPU device ("Trying to access resource ... located in
    device CPU:1 from device CPU:0"). Keras's default ("auto") already turns
    XLA off under any strategy. Several GPUs, or one device per worker, are
    not refused (and not verified here).

    Raises:
        InvalidValueError: `jit` is True and the strategy has several local
            CPU devices.
    """
    if not jit or strategy.num_replicas_in_sync == 1:
        return
    devices = strategy.extended.worker_devices
    if len(devices) > 1 and all("CPU" in device.upper() for device in devices):
        raise InvalidValueError(
            f"--jit (XLA) cannot run across the {len(devices)} CPU devices of this process: "
            "TensorFlow's compiled step cannot reach another device's variables. Use --no-jit "
            f"(or the default). Received: jit={jit!r}, devices={list(devices)}"
        )


def is_chief(strategy):
    """True on the worker that writes the run folder (always, but with several workers)."""
    return isinstance(strategy, OneDevice) or bool(strategy.extended.should_checkpoint)


def describe_worker(strategy):
    """`"worker 1 of 2 (2 replicas)"` for messages, or None outside a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return None
    workers = sum(
        len(v) for k, v in resolver.cluster_spec().as_dict().items() if k in ("chief", "worker")
    )
    return (
        f"{resolver.task_type} {resolver.task_id} of {workers} "
        f"({strategy.num_replicas_in_sync} replicas)"
    )


@contextlib.contextmanager
def precision_policy(name):
    """Sets Keras's global dtype policy for `TrainConfig.mixed_precision` inside the block.

    Models built or loaded inside get the policy: float16/bfloat16 compute,
    float32 variables. A `.keras` file of a mixed_float16 model must be
    loaded under the policy for its optimizer to come back as a
    `LossScaleOptimizer` with its saved state (Keras wraps the optimizer when
    it compiles a model whose policy is mixed_float16). The previous policy
    is restored on exit.

    Args:
        name: "off" (float32), "mixed_float16" or "mixed_bfloat16".
    """
    if name not in PRECISION_POLICIES:
        raise ValueError(
            f"Argument `name` must be one of {', '.join(map(repr, PRECISION_POLICIES))}. "
            f"Received: name={name!r}"
        )
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[name])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def data_sharded(dataset):
    """`dataset` marked to be split across workers batch by batch (`AutoShardPolicy.DATA`).

    Every worker runs the whole pipeline and keeps its replicas' shares of
    each global batch, so the batches are those of one device. (The default
    policy, AUTO, first looks for input files to split, finds none and
    falls back to DATA with a warning.) No effect without several workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _global_sum(strategy, contribution):
    """Sums `contribution(replica_id)` (float64 tensors) over every replica of every worker."""
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: contribution(context.replica_id_in_sync_group)
    )
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


def broadcast_from_chief(strategy, values):
    """The chief's `values` on every worker (a collective: every worker must call it).

    Replica 0 is the chief's first device; it alone contributes to a sum
    over all replicas, so the result is the chief's values exactly.

    Args:
        strategy: the run's strategy (any; with one worker it returns `values`).
        values: numbers or a float64-convertible array, the same shape on
            every worker. Integers up to 2**53 are exact.

    Returns:
        A float64 NumPy array: the chief's `values`.
    """
    values = tf.constant(np.asarray(values, np.float64))
    zeros = tf.zeros_like(values)
    return _global_sum(strategy, lambda replica: values if replica == 0 else zeros).numpy()


def all_workers(strategy, flag):
    """True on every worker if `flag` is True on every worker (a collective)."""
    missing = tf.constant(0.0 if flag else 1.0, tf.float64)
    return float(_global_sum(strategy, lambda replica: missing)) == 0.0


def copy_variables_from_chief(strategy, variables):
    """Assigns the chief's value of each variable to it on every worker (a collective).

    Used when a multi-worker run resumes: the chief loads the checkpoint,
    the others have a fresh model with the same variables in the same order
    (including a built optimizer), and all continue from the chief's state.

    Args:
        strategy: the run's strategy.
        variables: Keras variables, the same list (order, shapes) on every worker.
    """
    values = [np.asarray(v.numpy(), np.float64).ravel() for v in variables]
    chief = broadcast_from_chief(strategy, np.concatenate(values) if values else np.zeros(0))
    offset = 0
    for variable, own in zip(variables, values):
        variable.assign(
            chief[offset : offset + own.size].reshape(variable.shape).astype(variable.dtype)
        )
        offset += own.size
