"""nbgrader configuration for the course (instructors: adjust the exchange and course id)."""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# The student version replaces each solution by this stub.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Training exercises run inside the notebook: allow a generous per-cell time.
c.ExecutePreprocessor.timeout = 900

# Every autograde entry point (`nbgrader autograde`, the formgrader's Autograde button) runs
# student code in the grading sandbox (bubblewrap, limits, guard), never in a plain kernel:
# nbgrader's pipeline with its Execute step replaced (see cnngrade.plugin).
from cnngrade.plugin import AUTOGRADE_PREPROCESSORS  # noqa: E402

c.Autograde.autograde_preprocessors = list(AUTOGRADE_PREPROCESSORS)
c.SandboxExecute.cell_timeout = 900

# Where `nbgrader release_assignment` / `collect` exchange files. By default a folder inside
# the course (`make lab` creates it), so the Assignment List and Course List work on a laptop;
# a multi-user JupyterHub sets NBGRADER_EXCHANGE_ROOT (for example /srv/nbgrader/exchange).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", os.path.join(c.CourseDirectory.root, ".exchange"))

# Feedback pages (every path that writes them: `nbgrader generate_feedback`, the formgrader,
# `make autograde`): math typeset offline by an inlined MathJax 3, and the hidden tests'
# source and tracebacks left out (nbgrader issue #917). To show the hidden tests in
# feedback, set this to False. The grader's private marker file never reaches feedback/.
c.HideHiddenTests.enabled = True
from cnncourse.feedback import configure as _configure_feedback  # noqa: E402

_configure_feedback(c)
