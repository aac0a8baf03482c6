"""The error an exercise stub raises: a part of the course not written yet.

The exercise version of the course replaces each solution region with
`raise NotWrittenError("<file>::<function>: <hint>")`. Only this error is reported as a TODO
(`NOT IMPLEMENTED: <file>::<function>: <hint>`, by plumbing/errors.py and by the grading plugins):
any other NotImplementedError, one raised inside Keras say, is a real error and is reported as
one. Standard library only, so that the exercise imports it without loading TensorFlow.
"""

from __future__ import annotations


class NotWrittenError(NotImplementedError):
    """Raised by an exercise stub; its message is '<file>::<function>: <hint>'."""


def unwritten(error: BaseException | None) -> NotWrittenError | None:
    """The stub's own error that `error` is, or was re-raised from; else None.

    TensorFlow re-raises an error met while tracing a tf.function or a tf.data map as a
    StagingError ("in user code: ..."), and Keras re-raises a layer's error with more text around
    its message, both with `raise ... from None`: the stub's error is then the hidden context of
    the one raised (`from stub` makes it the cause). An error that merely happened while a stub's
    error was being handled (a bug in the handler) is not the stub's: it is reported as itself. The
    deepest stub's error is returned, as the stub raised it, with its message unchanged.
    """
    found, seen = None, set()
    while error is not None and id(error) not in seen:  # seen: a chain can loop back on itself
        seen.add(id(error))
        if isinstance(error, NotWrittenError):
            found = error
        if error.__cause__ is not None:
            error = error.__cause__
        elif error.__suppress_context__:
            error = error.__context__
        else:
            break
    return found
