"""The MLflow runs of one job (a `distill` config, an `eval` command): one run per name, kept going when the store
goes away.

    runs = JobRuns("quickstart", uri, key, console)      # JobStillRunning if a live process runs this job
    runs.finished("student-cot")                          # its finished run from an earlier attempt, or None
    with runs.run("agent-distill", params={...}) as run:  # continues an orphaned/failed run of that name (lifecycle)
        result = evaluate(...)                            # the work: never lost to the store
        runs.log(result.metrics())                        # MLflow calls inside the block
    runs.lost                                             # TrackingStoreError once the store stopped answering

If the store stops answering inside a `run` block, the error is swallowed (the block's own results stay with the
caller), `lost` says what happened, and every later block runs without MLflow (`run` yields None): the job finishes,
writes its files, prints its tables, and tells the user what was not logged.
"""

from __future__ import annotations

import contextlib

from agentdistill.tracking import lifecycle, probe


class JobRuns:
    def __init__(self, experiment: str, tracking_uri: str, key: str, reopen_finished: bool = True):
        import mlflow

        from agentdistill import tracking

        self.experiment, self.uri, self.key, self.reopen_finished = experiment, tracking_uri, key, reopen_finished
        self.lost: probe.TrackingStoreError | None = None
        self.opened: set[str] = set()
        try:
            tracking.configure(experiment, tracking_uri)
            self.experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
            self.earlier = lifecycle.job_runs(self.experiment_id, key)  # runs of earlier attempts, by name
        except Exception as e:  # the store went away since it was probed: before any work, so say so and stop
            lost = probe.store_lost(e, tracking_uri)
            if lost is None:
                raise
            raise lost from e

    def finished(self, name: str):
        """The FINISHED run of `name` from an earlier attempt of this job, or None."""
        run = self.earlier.get(name)
        return run if run is not None and run.info.status == lifecycle.FINISHED else None

    def continued(self, name: str):
        """The earlier run of `name` that `run(name)` will continue (orphaned, failed...), or None."""
        run = self.earlier.get(name)
        if run is None or (run.info.status == lifecycle.FINISHED and not self.reopen_finished):
            return None
        return run

    def note_lost(self, error: BaseException) -> bool:
        """True (and `lost` set) if `error` is the store having gone away; False for any other error."""
        if self.lost is None:
            self.lost = probe.store_lost(error, self.uri)
        return self.lost is not None

    @contextlib.contextmanager
    def run(self, name: str, **kwargs):
        """A tracking.open_run for this job (kwargs: params, tags, kind...), or None once the store is lost."""
        import mlflow

        from agentdistill import tracking

        active = None
        self.opened.add(name)
        if self.lost is None:
            before = mlflow.active_run()
            try:
                active = tracking.open_run(name, experiment=self.experiment, tracking_uri=self.uri, job=self.key,
                                           reopen_finished=self.reopen_finished, **kwargs)
            except Exception as e:
                if mlflow.active_run() is not before:  # started, then the store went away: not left on the stack
                    with contextlib.suppress(Exception):
                        mlflow.end_run(lifecycle.FAILED)
                if not self.note_lost(e):
                    raise
        status = lifecycle.FINISHED
        try:
            yield active
        except Exception as e:
            status = lifecycle.FAILED
            if active is None or not self.note_lost(e):
                raise
        except BaseException:
            status = "KILLED"
            raise
        finally:
            if active is not None:
                try:
                    mlflow.end_run(status)  # pops the run even when the store does not answer
                except Exception as e:
                    if not self.note_lost(e):
                        raise

    def close_leftovers(self) -> list[str]:
        """Mark FAILED the runs an earlier attempt left RUNNING that this attempt did not continue (a variant no
        longer reached, e.g. its compile failed this time); returns their names."""
        import mlflow

        if self.lost is not None:
            return []
        closed = []
        for name, run in self.earlier.items():
            if name not in self.opened and run.info.status == lifecycle.RUNNING:
                client = mlflow.MlflowClient()
                client.set_tag(run.info.run_id, lifecycle.ERROR_TAG,
                               "interrupted: its process ended before the run did, and a rerun did not continue it")
                client.set_terminated(run.info.run_id, lifecycle.FAILED)
                closed.append(name)
        return closed

    def log(self, metrics: dict | None = None, artifacts: dict | None = None, tags: dict | None = None,
            dicts: dict | None = None, eval_rows: dict | None = None, model_id: str | None = None) -> None:
        """Metrics, artifact files ({path: artifact folder}), tags and JSON documents ({name: obj}) to the active
        run; nothing once the store is lost. With `eval_rows` (benchmark -> example rows) the metrics are an
        evaluation's: each benchmark's linked to its dataset, and all to `model_id` (tracking.log_evaluation)."""
        if self.lost is not None:
            return
        import mlflow

        from agentdistill import tracking

        if metrics and eval_rows is not None:
            tracking.log_evaluation(metrics, eval_rows, model_id=model_id)
        elif metrics:
            tracking.log_metrics(metrics, model_id=model_id)
        for path, folder in (artifacts or {}).items():
            tracking.log_artifact(path, artifact_path=folder)
        for name, obj in (dicts or {}).items():
            mlflow.log_dict(obj, name)
        if tags:
            mlflow.set_tags(tags)
