"""The doors: each speaks one protocol and only translates; runs go through runner.submit."""
