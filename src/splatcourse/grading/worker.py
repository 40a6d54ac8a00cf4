"""A long-lived nbgrader process that grades one submission per request.

Starting nbgrader (imports, config, database setup) costs about as much as grading a small
submission, so each worker of `instructor.autograde` keeps one of these running and sends it
one `{"assignment": ..., "student": ...}` line per submission; it answers one JSON line. Student
code never runs here (only in the sandboxed kernel it starts), so reusing the process is safe;
the parent still kills it, and starts a fresh one, if a submission runs past its time limit.

Run from the course's `autograde/` folder: `python -m splatcourse.grading.worker [nbgrader args]`.

Used by: every exercise's autograding (one per pool slot).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback


class _Errors(logging.Handler):
    """Collects the ERROR lines nbgrader logs for one submission: the failure's explanation."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().strip().splitlines()[-1][:300])


def main(argv: list[str]) -> int:
    # Replies go over a private copy of stdout; fd 1 itself becomes stderr (the worker's log),
    # so nothing else that writes to stdout (nbgrader, a kernel, a student's os.write(1, ...))
    # can garble the conversation with the parent.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from nbgrader.apps import AutogradeApp
    from nbgrader.coursedir import CourseDirectory

    app = AutogradeApp()
    app.initialize(["--force", *argv])
    coursedir = app.coursedir
    assert isinstance(coursedir, CourseDirectory), coursedir  # initialize() creates it
    errors = _Errors()
    app.log.addHandler(errors)
    for line in sys.stdin:
        errors.lines.clear()
        request = json.loads(line)
        coursedir.assignment_id = request["assignment"]
        coursedir.student_id = request["student"]
        try:
            app.start()
            reply = {"ok": True, "error": ""}
        except (Exception, SystemExit):
            tail = errors.lines or traceback.format_exc().strip().splitlines()[-3:]
            reply = {"ok": False, "error": " | ".join(tail)[-800:]}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
