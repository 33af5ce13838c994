"""The sitting's steps, one module each; each `run(sitting, until)` returns the step's entry for sitting.json."""
