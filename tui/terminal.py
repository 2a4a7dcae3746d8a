"""How the dashboard ends: q, --duration, a stop signal, or a terminal that went away.

``ExitGuard`` owns the exit reason and code, the stop-signal handlers, the hang-up check and
a watchdog: if a normal exit hangs (writing to a dead terminal), it stops the data and ends
the process anyway, since an orphaned root process must never linger. ``TerminalDriver`` is
Textual's Linux driver changed to report a lost terminal instead of dying in a thread.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
from collections.abc import Callable
from typing import IO, Any

from textual.app import App
from textual.drivers.linux_driver import LinuxDriver

EXIT_GRACE_S = 3.0  # after a signal or a lost terminal, force the exit after this long
# How often the terminal is checked for a hang-up. Without SIGHUP (txtop not the terminal's
# controlling process) a closed terminal is otherwise noticed only at the next failed write,
# up to a refresh interval later, while Textual's input thread spins on end-of-file.
HANGUP_CHECK_S = 0.25
LOST_TERMINAL = "terminal lost"


class ExitGuard:
    """Ends ``app`` with a reason and a code; ``stop_data(timeout)`` stops the source and
    closes the recording (the watchdog's last act before ``os._exit``)."""

    def __init__(self, app: App[int], stop_data: Callable[[float], None]) -> None:
        self.app = app
        self.reason = ""
        self._stop_data = stop_data
        self._watchdog: threading.Timer | None = None
        self._signals: list[int] = []

    def leave(self, reason: str, code: int, watchdog: bool = False) -> None:
        self.reason = reason
        if watchdog:
            self.arm_watchdog(code)
        self.app.exit(code, return_code=code)

    # ---- stop signals -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self.leave(signal.Signals(sig).name, 128 + sig, watchdog=True)

    # ---- the terminal -------------------------------------------------------------------------
    def check_terminal(self) -> None:
        """Called every HANGUP_CHECK_S with a TerminalDriver."""
        driver = self.app._driver
        if (
            self.reason != LOST_TERMINAL
            and isinstance(driver, TerminalDriver)
            and driver.terminal_hung_up()
        ):
            self.terminal_lost()

    def terminal_lost(self) -> None:
        """The TTY went away (EIO): leave quietly; nobody can see an error message."""
        self.leave(LOST_TERMINAL, 129, watchdog=True)

    def lost_from_driver(self) -> None:
        """The driver's threads found the terminal gone: arm the watchdog at once (the app's
        loop may be stuck), then leave on the app's loop."""
        self.arm_watchdog(129)
        self.app.call_later(self.terminal_lost)

    def arm_watchdog(self, code: int) -> None:
        """If a normal exit hangs (e.g. writing to a dead terminal), stop the data and end
        the process anyway: an orphaned root process must never linger."""
        if self._watchdog is not None:
            return

        def force_exit() -> None:
            try:
                self._stop_data(1.0)
            finally:
                os._exit(code)

        self._watchdog = threading.Timer(EXIT_GRACE_S, force_exit)
        self._watchdog.daemon = True
        self._watchdog.start()


class _GuardedFile:
    """Wraps the terminal file: a write error (EIO, EPIPE) ends the app instead of killing
    Textual's writer thread, which would leave later writes blocked forever."""

    def __init__(self, file: IO[str], on_error: Callable[[], None]) -> None:
        self._file = file
        self._on_error = on_error
        self._dead = False

    def write(self, text: str) -> int:
        if self._dead:
            return len(text)
        try:
            return self._file.write(text)
        except OSError:
            self._dead = True
            self._on_error()
            return len(text)

    def flush(self) -> None:
        if self._dead:
            return
        try:
            self._file.flush()
        except OSError:
            self._dead = True
            self._on_error()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class TerminalDriver(LinuxDriver):
    """Textual's Linux driver, changed to exit cleanly when the terminal disappears. Use
    ``terminal_driver_class`` to say whom to tell."""

    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._file = _GuardedFile(self._file, self._lost)  # type: ignore[arg-type,assignment]

    def terminal_hung_up(self) -> bool:
        """True once the terminal is gone (the pty's other end closed, SSH dropped):
        a hung-up tty polls as POLLHUP/POLLERR, a live one never does."""
        poller = select.poll()
        fds = {self.fileno}
        if self._file is None:
            return True
        try:
            fds.add(self._file.fileno())
        except (OSError, ValueError):
            return True
        for fd in fds:
            poller.register(fd, select.POLLIN | select.POLLOUT)
        try:
            events = poller.poll(0)
        except OSError:
            return True
        bad = select.POLLHUP | select.POLLERR | select.POLLNVAL
        return any(mask & bad for _fd, mask in events)

    def _lost(self) -> None:
        """The terminal went away (called on the writer or the input thread)."""

    def _run_input_thread(self) -> None:
        try:
            self.run_input_thread()
        except OSError:  # EIO on read: SSH dropped, tmux killed, pty closed
            self._lost()
        except BaseException:  # as Textual does: report anything else loudly
            import rich.traceback

            self._app.call_later(self._app.panic, rich.traceback.Traceback())


def terminal_driver_class(on_lost: Callable[[], None]) -> type[TerminalDriver]:
    """A TerminalDriver that calls ``on_lost`` (on one of its threads) when the terminal goes."""

    class Driver(TerminalDriver):
        def _lost(self) -> None:
            on_lost()

    return Driver
