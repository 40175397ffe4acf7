"""Reader studies in the window: sign-in, a reader's worklist and reading form, a coordinator's view."""
