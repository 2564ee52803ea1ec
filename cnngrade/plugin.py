"""The sandboxed execute step as an importable class, for the course's ``nbgrader_config.py``.

With ``c.Autograde.autograde_preprocessors`` naming ``cnngrade.plugin.SandboxExecute``
in place of nbgrader's ``Execute``, every autograde entry point (``nbgrader autograde``,
the formgrader's Autograde button, ``python -m cnngrade``) runs student code in the
sandbox; no path grades in a plain kernel. Importing this module imports nbgrader.
"""

from cnngrade.execute import make_execute_class

SandboxExecute = make_execute_class()

# nbgrader's default autograde pipeline with its Execute step replaced (names, for nbgrader_config.py)
AUTOGRADE_PREPROCESSORS = [
    "cnngrade.plugin.SandboxExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
