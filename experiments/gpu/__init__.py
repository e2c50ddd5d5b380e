"""The GPU sessions' shell scripts (gpu_pending.sh and the stages it runs), run from the repository's root on
a lent GPU machine; no Python module lives here."""
