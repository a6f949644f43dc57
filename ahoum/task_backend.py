"""django-tasks-db's database backend, with each task row inserted through SQL compiled once.

Every booking change enqueues tasks inside its transaction (its emails, its CRM delivery),
and the stock backend writes each row with `DBTaskResult.objects.create()`: building and
compiling that INSERT costs more Python than running it (bench/README.md, step 16). This
writes the same row through `ahoum.compiled.insert`, which sends no save signals; the one
receiver django-tasks-db has (`pre_save`: `run_after` defaults to the far future, meaning
"as soon as possible") is applied here. `tests/test_task_backend.py` compares the rows with
the stock backend's and fails if django-tasks-db adds a receiver or changes this method.
"""

from django_tasks_db.backend import DatabaseBackend as StockDatabaseBackend
from django_tasks_db.compat import normalize_json

from ahoum import compiled


class DatabaseBackend(StockDatabaseBackend):
    def _task_to_db_task(self, task, args, kwargs):
        from django_tasks_db.models import DBTaskResult, get_date_max

        return compiled.insert(
            DBTaskResult(
                id=self._get_id(),
                args_kwargs=normalize_json({"args": args, "kwargs": kwargs}),
                priority=task.priority,
                task_path=task.module_path,
                queue_name=task.queue_name,
                run_after=task.run_after or get_date_max(),
                backend_name=self.alias,
            )
        )
