"""autograde refuses up front when an assignment's capture is missing, and says how to get it."""

import json

import pytest

from splatcourse.grading import instructor
from splatcourse.grading.harness import copy_course


def _require(course: instructor.Course, assignment: str, capture: str) -> None:
    path = next((course.solutions / assignment).glob("*.ipynb"))
    nb = json.loads(path.read_text())
    nb.setdefault("metadata", {})["splatcourse"] = {"captures": [capture]}
    path.write_text(json.dumps(nb))


def test_missing_capture_stops_grading_before_any_submission_runs(tmp_path, monkeypatch):
    course = copy_course(tmp_path / "course")
    _require(course, "ex01_toy_splats", "no_such_capture")
    subs = tmp_path / "subs" / "alice" / "ex01_toy_splats"
    subs.mkdir(parents=True)
    (subs / "ex01_toy_splats.ipynb").write_text("{}")
    started = []
    monkeypatch.setattr(instructor, "_Worker", lambda *a, **k: started.append(a))
    with pytest.raises(instructor.MissingCourseData) as err:
        instructor.autograde(tmp_path / "subs", course=course, progress=False)
    message = str(err.value)
    assert "ex01_toy_splats needs the capture 'no_such_capture'" in message
    assert "splatcourse download no_such_capture" in message
    assert "Nothing was graded" in message
    assert not started, "a worker started although the data was missing"
    assert not list(course.root.glob("autograde/submitted/*")), "a submission was copied"


def test_capture_requirements_are_read_from_the_source_notebook(tmp_path):
    course = copy_course(tmp_path / "course")
    assert course.required_captures("ex01_toy_splats") == []
    _require(course, "ex01_toy_splats", "socketed_axe_arreton")
    assert course.required_captures("ex01_toy_splats") == ["socketed_axe_arreton"]
    # an assignment nobody submitted is not checked: its data may be absent
    instructor.check_course_data(course, [])


def test_models_are_built_once_before_grading_and_only_when_asked_for(tmp_path, monkeypatch):
    from splatcourse.train import renderer_model

    course = copy_course(tmp_path / "course")
    assert course.required_models("ex03_gaussians_3d") == [renderer_model.RENDERER_MODEL_NAME]
    assert course.required_models("ex01_toy_splats") == []
    built = []
    monkeypatch.setattr(renderer_model, "build_renderer_model", lambda: built.append(1))
    monkeypatch.setattr(instructor.Course, "required_captures", lambda self, name: [])
    instructor.check_course_data(course, ["ex01_toy_splats"])
    assert built == []
    instructor.check_course_data(course, iter(["ex01_toy_splats", "ex03_gaussians_3d"]))
    assert built == [1]
