"""Every script's main: `return entry.main(work, argv)` runs work(argv) with Ctrl-C and SIGTERM
handled (plumbing/signals.py) and the errors a user can fix printed as one line with their exit code
(plumbing/errors.py). train.py's work is `entry.training(...)`: its flags, then --eval-only,
--resume, a sweep of runs or one run. `entry.answer_early` answers `python train.py --help` (and
usage errors) before TensorFlow loads, which takes seconds.

Standard library only (and this repository's stdlib-only plumbing): --help must stay instant.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from plumbing import errors, options, quiet, signals

_start_up = []  # the stderr filter answer_early started around TensorFlow's import; main stops it


def main(work, argv: list[str] | None = None) -> int:
    """Runs work(argv) -> exit code, Ctrl-C and SIGTERM stopping it cleanly from its first line to
    its last; a UsageError, DataError, ... is one line on stderr and its exit code
    (errors.report)."""
    while _start_up:  # TensorFlow is loaded: its start-up noise is over
        _start_up.pop().__exit__(None, None, None)
    quiet.hide_retracing_warnings()

    def handled(argv):
        with signals.handled():
            return work(argv)

    return errors.report(handled, argv)


def answer_early(module_name: str, defaults: dict) -> None:
    """For `python train.py` (module_name "__main__"): --help, --list-presets and usage errors are
    answered here, before TensorFlow loads (seconds); then TensorFlow's start-up noise on stderr is
    filtered until main starts (plumbing/quiet.py). Until then Ctrl-C and SIGTERM end the program
    quietly. Imported as a module (by the tests), it does nothing."""
    if module_name != "__main__":
        return
    for signum in signals.HANDLED:
        signal.signal(signum, signals.exit_quietly)

    def check_flags(argv: list[str]) -> int:
        # prints --help or --list-presets and exits, or raises a UsageError
        options.parse(argv, defaults)
        return 0

    code = errors.report(check_flags, sys.argv[1:])
    if code:
        sys.exit(code)
    start_up = quiet.tensorflow_start_up()
    start_up.__enter__()
    _start_up.append(start_up)


def training(defaults: dict, *, train_one, evaluate_saved_model, check_data, compare):
    """train.py's work(argv): parses the flags (plumbing/options.py), then evaluates a saved model
    (--eval-only), resumes a run (--resume), trains a sweep (--sweep, plumbing/sweep.py; compared at
    the end with compare(argv)) or one run. train_one(config, resume) -> exit code trains one run;
    evaluate_saved_model(model, path, config) -> exit code; check_data(config) checks a sweep's
    point against its data before any trains."""

    def work(argv: list[str] | None) -> int:
        from plumbing import runs, sweep  # here, not at the top: --help needs neither

        job = options.parse(argv, defaults)
        if job.eval_only:
            from plumbing import machine  # TensorFlow is loaded by now

            config, model_path = saved_config(job, defaults), Path(job.eval_only)
            machine.select_device("auto")  # quietly: probing for a GPU prints noise without one
            return evaluate_saved_model(runs.load_model(model_path), model_path, config)
        if job.resume:
            config = options.for_resume(runs.read_config(Path(job.resume), defaults), job.config)
            return one_run(config, job.resume)
        if job.config.get("sweep"):
            plan = job.config["sweep"]
            return sweep.run(plan, one_run, compare, check_data=check_data)
        return one_run(job.config, None)

    def one_run(config: dict, resume) -> int:
        """train_one, on the device (and with the 16-bit compute and determinism) it asks for."""
        import keras  # loaded by train.py already

        from plumbing import machine

        keras.backend.clear_session()  # a sweep trains many models in one process
        machine.start(config)  # the device, 16-bit compute, determinism; says which
        return train_one(config, resume)

    return work


def saved_config(job: options.Job, defaults: dict) -> dict:
    """--eval-only's config: that of the run that saved the model, else the flags given."""
    from plumbing import runs

    run_dir = Path(job.eval_only).parent
    if (run_dir / "config.json").is_file():
        return options.for_resume(runs.read_config(run_dir, defaults), job.config)
    return options.resolve(job.config, defaults)
