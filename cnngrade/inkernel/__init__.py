"""Code that runs inside the sandboxed kernel (standard library only until ipykernel starts): the boot module and the guard."""
