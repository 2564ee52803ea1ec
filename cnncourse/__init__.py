"""cnncourse: the course's own tooling (interview index, release, self-grading, bench).

Learners never import this package; it reads the course's notebooks as files and
never executes a solution.
"""
