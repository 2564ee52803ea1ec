"""cnngrade: the instructor's grading service (sandboxed, parallel, fault-isolated, resumable).

Where each concern lives:

- :mod:`cnngrade.cli`: the command line (``python -m cnngrade``, ``make autograde``);
- :mod:`cnngrade.run`: one run (checks, plan, template, workers, merge) and
  :mod:`cnngrade.report` (the table and the report file);
- :mod:`cnngrade.records`: typed, versioned job / result / marker records (plain JSON);
- :mod:`cnngrade.workers`: worker processes from the standard library's fork server;
- :mod:`cnngrade.job`: one student inside a worker (preflight, nbgrader, grades out);
- :mod:`cnngrade.preflight`: read / match / rebuild / suspicious steps on untrusted notebooks;
- :mod:`cnngrade.execute`: nbgrader's execute step, run in the sandbox, with the guard;
  :mod:`cnngrade.plugin` names it for the course's ``nbgrader_config.py``, so plain
  ``nbgrader autograde`` and the formgrader run student code in the sandbox too;
- :mod:`cnngrade.gradebook`: backup, the assignment's definition, merging results;
- :mod:`cnngrade.template`: the run's template course; :mod:`cnngrade.files`: safe copies;
- :mod:`cnngrade.sandbox`: host side of the sandbox (limits, bwrap arguments, cgroups,
  kernel client); :mod:`cnngrade.inkernel`: what runs inside it (boot module, guard);
- :mod:`cnngrade.bench`: grading throughput, and plain ``nbgrader autograde`` beside it.

It imports neither torch nor the learner library ``cnnlab`` on the host.
"""
