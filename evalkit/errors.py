"""Errors that reach the user as a clear message and exit code 2, never as a bare traceback."""


class EvalkitError(Exception):
    """Bad input or usage: the message names the file, field or sample and, where possible, the fix."""

    exit_code = 2


class SampleError(Exception):
    """A problem with one sample (unreadable image, adapter failure): stored per sample, the run goes on."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: what was kept, so the user learns that running the same command again resumes."""

    def __init__(self, task: str, model: str, kept: int, total: int) -> None:
        super().__init__(f"{task} · {model}: {kept} of {total} samples kept")
        self.task, self.model, self.kept, self.total = task, model, kept, total
