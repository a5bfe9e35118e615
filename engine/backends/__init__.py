"""Where sandboxes run: `local` on this host; a remote backend (execution workers) fits the same seam."""
