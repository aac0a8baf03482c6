"""Runs many short jobs (train.py runs, pytest sessions) in forked children of one helper process.

Loading TensorFlow takes seconds; the helper loads it once (without running any operation, which is
what makes forking safe) and forks a fresh child per job. A child imports the project's modules from
the job's tree, can be made to crash or be interrupted at a chosen moment (a fault), and reports its
exit status: the exit code, or minus the signal that killed it.

A fault names an event and when, counting from 1 across the child's events:
    {"at": "write", "after": k, "signal": 9}   after the k-th file renamed into place (os.replace)
                                               or checkpoint saved, send the signal (9: SIGKILL)
    {"at": "step", "after": k, "signal": 15}   after the k-th training step ("repeat": 2 sends it
                                               twice)
    {"at": "time", "after": s, "signal": 2}    s seconds after main starts, if it is still running
                                               (the events list "signal" for each signal sent)
    {"at": "record"}                           kill nothing: list the write events
                                               (report["events"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

RUNNER = textwrap.dedent('''
    import json, os, sys, time
    import io, matplotlib, numpy, pytest, keras, tensorflow as tf  # loaded once, before any fork
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure = plt.figure()  # loads the fonts once (the children's plots would each load them again)
    figure.text(0.5, 0.5, "x")
    figure.savefig(io.BytesIO())
    plt.close(figure)
    DONE = []  # set in a child once main has returned

    def apply(fault, events):
        """Wraps the functions whose calls are the fault's events."""
        import plumbing.files, train
        def counted(kind, function, describe):
            def wrapper(*args, **kwargs):
                result = function(*args, **kwargs)
                events.append(f"{kind} {describe(args)}")
                writes = "write" if kind in ("replace", "checkpoint") else None
                if fault.get("at") in (kind, writes) and len(events) == fault["after"]:
                    for _ in range(fault.get("repeat", 1)):
                        os.kill(os.getpid(), fault["signal"])
                        # lets its handler run: two pending signals would count as one
                        time.sleep(0.1)
                return result
            return wrapper
        if fault.get("at") in ("write", "record"):
            replace = counted("replace", os.replace, lambda a: os.path.basename(a[1]))
            plumbing.files.os.replace = replace
            tf.train.CheckpointManager.save = counted("checkpoint", tf.train.CheckpointManager.save,
                                                      lambda a: "checkpoints")
        if fault.get("at") == "step":
            make = train.make_train_step
            train.make_train_step = lambda *a, **k: counted("step", make(*a, **k), lambda a: "")
        if fault.get("at") == "time":
            import threading
            def later():
                time.sleep(fault["after"])
                for _ in range(fault.get("repeat", 1)):
                    if not DONE:  # main has not returned yet
                        events.append("signal")
                        os.kill(os.getpid(), fault["signal"])
                        time.sleep(0.1)
            threading.Thread(target=later, daemon=True).start()

    for job in json.loads(sys.argv[1]):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.chdir(job["cwd"])
            sys.path.insert(0, job["root"])
            report, start = {"events": []}, time.perf_counter()
            try:
                module = pytest if job["module"] == "pytest" else __import__(job["module"])
                if job.get("fault"):
                    apply(job["fault"], report["events"])
                if job["module"] == "pytest":
                    report["code"] = int(pytest.main(job["argv"]))
                else:
                    report["code"] = module.main(job["argv"])
                DONE.append(True)
            except BaseException as err:
                # reported, not raised: the parent goes on with the next job
                report["code"], report["error"] = -1, repr(err)
            sys.stdout.flush()
            sys.stderr.flush()
            report["seconds"] = round(time.perf_counter() - start, 1)
            os.write(write, json.dumps(report).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        killed = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        report = json.loads(text) if text else {"code": killed}
        print("REPORT " + json.dumps(report), flush=True)
''')


def run_jobs(jobs: list[dict], timeout: float = 900) -> list[dict]:
    """Runs the jobs one after another; each is {"root": tree, "cwd": folder, "module": "train" or
    "pytest" or another module with main(argv), "argv": [...], "fault": {...} (optional)}. Returns
    one report per job: {"code": exit code or -signal, "events": [...]} plus "output" (the helper's
    stdout and stderr)."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    reports = [
        json.loads(line[7:]) for line in result.stdout.splitlines() if line.startswith("REPORT ")
    ]
    if len(reports) != len(jobs):
        raise AssertionError(
            f"the job runner stopped after {len(reports)} of {len(jobs)} jobs:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    for report in reports:
        report["output"] = result.stdout + result.stderr
    return reports


can_fork = hasattr(os, "fork") and sys.platform == "linux"
