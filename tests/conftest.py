from pathlib import Path

import pytest

from splatcourse.paths import repo_root


@pytest.fixture(scope="session")
def root() -> Path:
    return repo_root()


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a whole test module (see splatcourse.threads for why)."""
    from splatcourse.threads import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def released_course(tmp_path_factory):
    """The course released from solutions/ into a temporary copy, gradebook included."""
    from splatcourse.grading import instructor
    from splatcourse.grading.harness import copy_course

    course = copy_course(tmp_path_factory.mktemp("released"))
    instructor.release(course)
    return course
