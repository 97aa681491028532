"""Ctrl-C (SIGINT) and SIGTERM stop a command or `train()`, even where Python would swallow them.

`signals_interrupt()` is what the commands (`cli.run_main`) and `train()`
put around their work; importing this module installs nothing.

Why Python's own Ctrl-C is not enough. Its SIGINT handler raises
`KeyboardInterrupt` wherever the main thread happens to be. When that is a
function Python calls on its own, with no caller to hand the exception to (a
`gc.callbacks` callback such as JAX's `_xla_gc_callback`, a `__del__` method,
a weakref callback), Python passes the exception to `sys.unraisablehook`,
which prints "Exception ignored in: ..." and goes on. Code that catches
everything (a bare `except:`, as in Keras's check of a Functional model's
inputs, which JAX runs while tracing) drops it too. Either way the interrupt
is lost and training goes on.

The design: the handler raises the error and follows it; an error that is
dropped instead of leaving the block is owed, and the signal is sent again.

- Inside the block, SIGINT and SIGTERM run one handler that raises the
  block's error (`make_error(signum)`) in the main thread, as Python's SIGINT
  handler does, and keeps a weak reference to it. Usually it leaves the block
  at once.
- The error is dropped when the block's `sys.unraisablehook` receives it, or
  when it is freed without having left the block (the weak reference's
  callback). Then a helper thread sends the signal again to the main thread
  (`signal.pthread_kill`), whose handler raises a new error where the main
  thread runs on. Neither the hook nor the callback can raise it themselves:
  what they raise is dropped as well, and a signal they sent
  (`signal.raise_signal`) would be handled at once, inside them. Should the
  new error be dropped again, it is sent again; while the hook or the
  callback runs, the handler only asks for another sending instead of
  raising.
- When the block ends, the helper is stopped and the previous handlers and
  hook come back; if the block ends normally although an error was raised
  in it (dropped, whether sent again yet or not), the error is raised then.
  So a signal that arrives in the block ends it with the error.

Only the main thread can install signal handlers; elsewhere the block
changes nothing. The helper needs `signal.pthread_kill` (POSIX).
"""

import contextlib
import signal
import sys
import threading
import weakref

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived inside a `signals_interrupt` block (the default error)."""


def _interrupted(signum):
    return Interrupted()


@contextlib.contextmanager
def signals_interrupt(make_error=_interrupted):
    """Inside the block, SIGINT and SIGTERM raise `make_error(signum)` in the main thread.

    See the module docstring for how an error that Python or a library drops
    is raised again. The previous signal handlers and `sys.unraisablehook`
    come back after the block. Blocks nest (`train()` inside a command): the
    inner one's error is raised while it runs.

    Args:
        make_error: `signum -> error`, an instance of a subclass of
            `KeyboardInterrupt` (the built-in class itself takes no weak
            reference). Default: an `Interrupted` without a message, which
            a command reports as Ctrl-C.

    Raises:
        KeyboardInterrupt: `make_error(signum)`, where the signal arrives,
            or again after it was dropped, at the latest when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts = _Interrupts(make_error, sys.unraisablehook)
    previous = {signum: signal.signal(signum, interrupts.handle) for signum in SIGNALS}
    sys.unraisablehook = interrupts.unraisable
    try:
        yield
    finally:
        try:
            interrupts.close()
        finally:
            sys.unraisablehook = interrupts.previous_hook
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if interrupts.owed is not None or interrupts.raised is not None:
        raise make_error(interrupts.received)  # the block ended although a signal arrived


class _Interrupts:
    """The state of one `signals_interrupt` block: its handler, hook, weak reference and helper thread."""

    def __init__(self, make_error, previous_hook):
        self.make_error = make_error
        self.previous_hook = previous_hook
        self.received = signal.SIGINT  # the last signal handled
        self.raised = None  # weak reference to the error raised and not known to be dropped
        self.owed = None  # a signal whose error was dropped, to be sent again
        self.reporting = (
            0  # > 0 while the main thread runs the hook or the weak reference's callback
        )
        self.closed = False
        self.main = threading.main_thread().ident
        self.wanted = threading.Event()
        self.helper = threading.Thread(
            target=self._send_again, name="keras-seresnet-interrupts", daemon=True
        )
        self.helper.start()

    def handle(self, signum, frame):
        """The signal handler: raises the error, or (inside the hook) has the signal sent again."""
        self.received = signum
        if self.reporting:
            self._owe()  # raised here, it would be dropped once more
            return
        self.owed = None
        error = self.make_error(signum)
        self.raised = weakref.ref(error, self._freed)
        try:
            raise error
        finally:
            del error  # no cycle through the traceback: a dropped error is freed at once

    def unraisable(self, args):
        """`sys.unraisablehook`: an interrupt is sent again, anything else reported as before."""
        if threading.current_thread() is not threading.main_thread():
            self.previous_hook(args)
            return
        self.reporting += 1
        try:
            if issubclass(args.exc_type, KeyboardInterrupt):
                self.raised = None  # its weak reference's callback must not owe it twice
                self._owe()
            else:
                self.previous_hook(args)
        finally:
            self.reporting -= 1

    def _freed(self, ref):
        """The raised error was freed without leaving the block: something dropped it."""
        if ref is not self.raised or self.closed:
            return
        self.reporting += 1
        try:
            self.raised = None
            self._owe()
        finally:
            self.reporting -= 1

    def _owe(self):
        self.owed = self.received
        self.wanted.set()

    def _send_again(self):
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.closed:
                return
            if self.owed is not None:
                signal.pthread_kill(self.main, self.owed)

    def close(self):
        """Ends the helper thread; a signal it already sent is handled here."""
        self.closed = True
        self.wanted.set()
        self.helper.join()
