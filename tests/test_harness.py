"""The mutation harness itself: it must report a surviving mutant, a broken one and a missing one."""

from harness import Mutant, run_mutants, structure_problems

from cnncourse.nbsrc import py_to_notebook, write_notebook

NOTEBOOK = '''# %% [markdown]
# ### Exercise: add
# %% [solution add]
def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION
# %% [tests add_tests points=1]
assert add(2, 2) == 4
### BEGIN HIDDEN TESTS
assert add(0, 0) == 0
### END HIDDEN TESTS
'''


def test_harness_flags_weak_tests_and_bad_mutants(tmp_path):
    path = tmp_path / "toy.ipynb"
    write_notebook(py_to_notebook(NOTEBOOK), path)
    mutants = [
        Mutant("add", "subtracts", old="a + b", new="a - b"),  # killed: 2 - 2 != 4
        Mutant("add", "multiplies", old="a + b", new="a * b"),  # survives: 2*2 == 4 and 0*0 == 0
        Mutant("add", "syntax error", old="a + b", new="a +"),  # the mutated cell itself fails
        Mutant("add", "absent text", old="a / b", new="a"),  # does not apply
    ]
    problems = run_mutants("toy", mutants, path=path)
    assert len(problems) == 3, problems
    assert "multiplies" in problems[0] and "SURVIVED" in problems[0]
    assert "syntax error" in problems[1] and "must run" in problems[1]
    assert "absent text" in problems[2] and "not found" in problems[2]
    # and the static check wants three mutants per solution cell
    assert structure_problems("toy", mutants[:2], path=path) == ["solution cell 'add' has 2 mutants; need 3"]


def test_visible_mutants_must_die_before_the_hidden_tests(tmp_path):
    path = tmp_path / "toy.ipynb"
    write_notebook(py_to_notebook(NOTEBOOK), path)
    only_hidden_catches = Mutant("add", "wrong at zero", old="return a + b", new="return a + b if a else 1")
    visible_catches = Mutant("add", "subtracts", old="a + b", new="a - b", visible=True)
    assert run_mutants("toy", [only_hidden_catches, visible_catches], path=path) == []
    problems = run_mutants("toy", [Mutant(**{**only_hidden_catches.__dict__, "visible": True})], path=path)
    assert len(problems) == 1 and "visible part of every test cell passed" in problems[0], problems
