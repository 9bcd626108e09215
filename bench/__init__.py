"""regiondb's benchmark suite: ``python -m bench`` and ``pytest bench --benchmark-only``.

Every figure is measured in the same run against the floor it sits on (raw ``lmdb`` doing the
minimum the engine must do) and against SQLite doing the same work. See ``bench/README.md`` for
the method and what each backend does and does not guarantee.
"""
