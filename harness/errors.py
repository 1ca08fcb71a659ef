"""The harness's errors: each names the bad value, what is allowed, and the fix.

    try:
        subject = load_subject("gpt2")
    except HarnessError as exc:
        print(exc)          # one readable paragraph, no traceback needed

The CLI and the pytest plugin catch `HarnessError` and print its message alone; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class SubjectLoadError(HarnessError):
    """A model (subject) could not be loaded: unknown name, missing weights, no network."""


class InputError(HarnessError, ValueError):
    """A bad argument: a factor, a layer, a prompt, a device or a dtype outside what is allowed."""


INTERRUPTED_EXIT = 130  # the exit code after Ctrl-C at a boundary, as a shell reports SIGINT (128 + 2)
