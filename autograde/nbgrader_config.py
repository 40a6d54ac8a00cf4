"""nbgrader configuration for the splat course.

The course root is the folder above this one: nbgrader's source is `solutions/`, its release is
`exercises/`, and everything produced while grading (submissions, autograded notebooks, feedback,
the SQLite gradebook) stays under `autograde/`, which git ignores except for this file.

Run nbgrader from this folder (`cd autograde && nbgrader ...`), or, simpler, use the course's
wrapper: `splatcourse release | autograde | feedback | grades` (see the README).
"""

import os

here = os.path.dirname(os.path.abspath(__file__))
c = get_config()  # noqa: F821

c.CourseDirectory.root = os.path.dirname(here)
c.CourseDirectory.course_id = "splat-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "autograde/submitted"
c.CourseDirectory.autograded_directory = "autograde/autograded"
c.CourseDirectory.feedback_directory = "autograde/feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "gradebook.db")
# only notebooks are part of an assignment; data come through the splatcourse package
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "outputs"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# nbgrader 0.9: Execute.timeout is the per-cell limit that wins over ExecutePreprocessor.timeout.
# A failing cell never stops the run: nbgrader's Execute fixes allow_errors to True (it is no
# config option; setting it here only earns a 'not recognized' warning from every worker).
c.Execute.timeout = 240
c.Execute.interrupt_on_timeout = True
# A test cell's verdict is its checks: what it wrote to stderr (a progress bar, a warning) is
# shown but never fails it, in the grader (SandboxedExecute) and in the Validate button alike.
from splatcourse.grading.execute import fold_stderr_when_validating  # noqa: E402

fold_stderr_when_validating()

# a student's output flood is cut before it reaches the gradebook or feedback
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40

# a student who deleted a test cell still gets graded: the cell is restored from the gradebook
c.OverwriteCells.add_missing_cells = True

# feedback never shows hidden tests: neither their source nor the tracebacks that quote it;
# every test cell that lost points says why
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "splatcourse.grading.nbgrader_ext.RedactHiddenTests",
    "splatcourse.grading.nbgrader_ext.ExplainLostPoints",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Student code runs only in the notebook kernel: splatcourse.grading.sandbox confines that kernel
# (namespaces + resource limits, or limits alone where namespaces cannot be made), and its
# preprocessor, splatcourse.grading.execute, puts back grading helpers a submission replaced and
# grades on if the kernel dies.
c.Autograde.autograde_preprocessors = [
    "splatcourse.grading.execute.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
