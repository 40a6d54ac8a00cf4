"""The grader's own logs stay bounded whatever a submission writes to fd 1 and 2.

A submission once wrote 24 MB straight to its file descriptors and put 38.5 MB into
`autograde/logs/worker-1.log`; each submission's share of its worker's log is now capped, and
the log says where it was cut.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from splatcourse.grading import instructor
from splatcourse.grading.harness import completed, copy_course, write_submission

CAP = instructor.MAX_LOG_BYTES_PER_SUBMISSION


def test_capped_log_keeps_each_submission_under_its_share(tmp_path):
    log = instructor.CappedLog(tmp_path / "worker.log", cap=1000)
    log.begin("flood/a")
    for _ in range(50):
        log.write(b"x" * 100)
    log.begin("quiet/a")
    log.write(b"hello\n")
    log.close()
    text = (tmp_path / "worker.log").read_text()
    flood, quiet = text.split("--- quiet/a ---")
    assert flood.count("x") == 1000
    assert "log of flood/a cut after" in flood and "4000 bytes of flood/a's output dropped" in flood
    assert quiet == "\nhello\n"


def test_drain_reads_a_pipe_to_its_end(tmp_path):
    log = instructor.CappedLog(tmp_path / "worker.log", cap=4096)
    log.begin("flood/a")
    read_end, write_end = os.pipe()
    drainer = threading.Thread(target=log.drain, args=(read_end,))
    drainer.start()
    subprocess.run(
        [sys.executable, "-c", "import os; os.write(1, b'y' * (1 << 22)); os.write(2, b'z' * 9)"],
        stdout=write_end,
        stderr=write_end,
        check=True,
    )
    os.close(write_end)
    drainer.join(timeout=30)
    log.close()
    assert not drainer.is_alive()
    assert (tmp_path / "worker.log").stat().st_size < 4096 + 300


@pytest.mark.slow
def test_a_flood_on_fd_1_and_2_is_cut_in_the_worker_log(released_course, tmp_path):
    a = "ex05_pipeline_brief"
    course = copy_course(tmp_path / "course", released_course.root, with_gradebook=True)
    nbs = completed(course, a)
    for cell in next(iter(nbs.values())).cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "validate":
            flood = "import os\nos.write(1, b'1' * 12 * 2**20)\nos.write(2, b'2' * 12 * 2**20)\n"
            cell.source = flood + cell.source
    write_submission(tmp_path / "subs", "flood", a, nbs)
    report = instructor.autograde(tmp_path / "subs", course, [a], workers=1, progress=False)
    assert not report.failures, report.summary()
    log = course.autograde / "logs" / "worker-0.log"
    text = log.read_text(errors="replace")
    assert log.stat().st_size < 2 * CAP, f"{log} holds {log.stat().st_size} bytes"
    assert "log of flood/ex05_pipeline_brief cut after" in text
