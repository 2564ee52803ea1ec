"""Errors of the grading service that are reported in one line."""


class InstructorError(Exception):
    """A problem of the instructor's setup (reported in one line, exit status 2, before anyone is graded)."""
