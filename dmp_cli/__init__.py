"""The `dmp` command line: its commands, and the build state that lets a run with nothing new stop."""
