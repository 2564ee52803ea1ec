"""The notebook metadata every stored course notebook carries.

JupyterLab writes the kernel's ``language_info`` into a notebook when it opens it; storing
the same values keeps a freshly opened lecture from showing as modified.
"""

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.7"}
METADATA = {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO}
